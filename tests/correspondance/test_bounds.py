"""The one validation layer for request values: dates, numbers, client JSON."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from correspondance import bounds
from correspondance.errors import InputError

POA = (dt.date(2019, 3, 1), dt.date(2019, 12, 31))
SAO_PAULO = dt.timezone(dt.timedelta(hours=-3))


def test_the_service_window_is_the_feeds_dates_and_a_year_either_side() -> None:
    start, end = bounds.service_window(POA)
    assert start == dt.datetime(2018, 2, 28, tzinfo=dt.UTC)
    assert end == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    narrow = bounds.service_window(POA, dt.timedelta(0))
    assert narrow == (
        dt.datetime(2019, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59",
        "9999-12-31T23:59:59-12:00",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00-12:00",
        "0001-01-01T00:00:00",
        "2021-01-01T00:00:01+00:00",
        "2018-02-27T23:59:59+00:00",
    ],
)
def test_dates_outside_the_window_are_out_of_range_without_overflowing(text: str) -> None:
    window = bounds.service_window(POA)
    with pytest.raises(bounds.OutOfRangeError, match=r"^'depart' .* is outside the feeds'"):
        bounds.parse_datetime(text, "depart", SAO_PAULO, window)


def test_dates_inside_the_window_are_kept_and_naive_ones_are_local() -> None:
    window = bounds.service_window(POA)
    value = bounds.parse_datetime("2019-05-15T13:00:00", "depart", SAO_PAULO, window)
    assert value == dt.datetime(2019, 5, 15, 13, tzinfo=SAO_PAULO)
    edge = bounds.parse_datetime("2020-12-31T20:59:59-03:00", "depart", SAO_PAULO, window)
    assert edge.utcoffset() == dt.timedelta(hours=-3)
    with pytest.raises(InputError, match="ISO 8601") as caught:
        bounds.parse_datetime("15/05/2019", "depart", SAO_PAULO, window)
    assert caught.value.code == "invalid_parameter"


def test_a_naive_datetime_is_out_of_range() -> None:
    with pytest.raises(bounds.OutOfRangeError):
        bounds.check_datetime(dt.datetime(2019, 5, 15), bounds.service_window(POA), "at")


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(-dt.timedelta(hours=12))),
        dt.datetime(2019, 5, 15, 13, 0, 0, 250_000, tzinfo=SAO_PAULO),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_unix_seconds_reach_every_year(value: dt.datetime) -> None:
    offset = value.utcoffset()
    assert offset is not None
    naive_utc_days = (value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)) - offset
    assert bounds.unix_seconds(value) == naive_utc_days.total_seconds()
    if dt.datetime(1971, 1, 1) < value.replace(tzinfo=None) < dt.datetime(9000, 1, 1):
        assert bounds.unix_seconds(value) == value.timestamp()


def test_unix_seconds_refuse_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        bounds.unix_seconds(dt.datetime(2019, 1, 1))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(bounds.NonFiniteNumberError, match="'lat' must be a finite number") as e:
        bounds.check_number(value, "lat", -90, 90)
    assert e.value.code == "non_finite_number"


def test_numbers_out_of_their_range_are_refused() -> None:
    assert bounds.check_number(-30.0, "lat", -90, 90) == -30.0
    with pytest.raises(bounds.OutOfRangeError, match=r"'lat' must be within \[-90, 90\]"):
        bounds.check_number(90.5, "lat", -90, 90)


@pytest.mark.parametrize("value", [-1, 10, 2**63, True, 1.0])
def test_indexes_are_whole_numbers_below_the_size(value: object) -> None:
    with pytest.raises(bounds.OutOfRangeError, match=r"'edge' must be a whole number in \[0, 10\)"):
        bounds.check_index(value, "edge", 10)  # type: ignore[arg-type]
    assert bounds.check_index(9, "edge", 10) == 9


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"lat": NaN}', bounds.NonFiniteNumberError),
        ('{"lat": Infinity}', bounds.NonFiniteNumberError),
        ('{"lat": -Infinity}', bounds.NonFiniteNumberError),
        ('{"lat": 1e400}', bounds.NonFiniteNumberError),
        ('{"a": [[[[1e999]]]]}', bounds.NonFiniteNumberError),
        ("[" * 40 + "]" * 40, bounds.JsonTooDeepError),
        ('{"edges": [9007199254740992]}', bounds.OutOfRangeError),
        ('{"seq": -9007199254740992}', bounds.OutOfRangeError),
        ("[" * 100_000 + "]" * 100_000, bounds.JsonTooDeepError),
        ('{"lat": ', InputError),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "1e400",
        "nested-1e999",
        "depth-40",
        "2**53",
        "-2**53",
        "depth-100k",
        "truncated",
    ],
)
def test_client_json_is_strict(text: str, kind: type[Exception]) -> None:
    with pytest.raises(kind):
        bounds.loads(text)


def test_a_non_finite_number_is_named_by_its_path() -> None:
    with pytest.raises(bounds.NonFiniteNumberError, match=r"'body\.legs\.1\.distance_m'"):
        bounds.loads('{"legs": [{"distance_m": 1}, {"distance_m": 1e400}]}')


def test_plain_json_passes() -> None:
    document = bounds.loads('{"type": "position", "lat": -30.03, "lon": -51.2, "deep": [[[]]]}')
    assert document["lat"] == -30.03
    assert bounds.loads("[" * 32 + "]" * 32) is not None
    assert bounds.loads("[9007199254740991, -9007199254740991]") == [2**53 - 1, 1 - 2**53]
