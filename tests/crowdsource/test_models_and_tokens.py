"""Report validation (each field, every problem named at once) and keyed token hashing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

import pytest
from crowdsource_helpers import SECRET

from crowdsource.errors import REJECTION_CODES, RateLimitedError, ReportRejectedError
from crowdsource.intake import check_report
from crowdsource.models import BatchIn, ReportIn, parse_batch, parse_report
from crowdsource.tokens import address_key, contributor_key, network_of

GOOD: dict[str, Any] = {"lat": -30.03, "lon": -51.21, "kind": "congestion", "level": 2}


def test_a_minimal_report_is_accepted_with_defaults() -> None:
    report = parse_report(GOOD)
    assert (report.level, report.heading, report.mode, report.observed_at) == (2, None, None, None)
    clear = parse_report(b'{"lat": -30, "lon": -51, "kind": "clear"}')
    assert (clear.lat, clear.kind, clear.level) == (-30.0, "clear", None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": 91}, "lat"),
        ({"lat": "-30.03"}, "lat"),
        ({"lat": float("nan")}, "lat"),
        ({"lon": -181}, "lon"),
        ({"lon": None}, "lon"),
        ({"kind": "traffic"}, "kind"),
        ({"level": 5}, "level"),
        ({"level": 0}, "level"),
        ({"level": 2.5}, "level"),
        ({"level": "2"}, "level"),
        ({"level": True}, "level"),
        ({"heading": 361}, "heading"),
        ({"heading": -1}, "heading"),
        ({"mode": "plane"}, "mode"),
        ({"observed_at": "2026-05-01T10:00:00"}, "observed_at"),  # naive: refused
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ReportRejectedError, match=rf"invalid report: {field}") as caught:
        parse_report({**GOOD, **change})
    assert caught.value.code == "invalid_report"
    assert caught.value.fields == (field,)


@pytest.mark.parametrize("missing", ["lat", "lon", "kind"])
def test_required_fields(missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ReportRejectedError, match=rf"{missing}: Field required"):
        parse_report(body)


def test_level_is_required_for_congestion_and_only_for_it() -> None:
    with pytest.raises(ReportRejectedError, match="level: required") as caught:
        parse_report({"lat": -30.0, "lon": -51.0, "kind": "congestion"})
    assert caught.value.fields == ("level",)
    with pytest.raises(ReportRejectedError, match="level: only congestion reports carry"):
        parse_report({"lat": -30.0, "lon": -51.0, "kind": "closure", "level": 2})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ReportRejectedError) as caught:
        parse_report({"lat": 100, "lon": 200, "kind": "congestion", "level": 9})
    assert set(caught.value.fields) == {"lat", "lon", "level"}


def test_batch_bounds_and_positions_in_batch() -> None:
    assert len(parse_batch({"reports": [GOOD] * 100}).reports) == 100
    with pytest.raises(ReportRejectedError, match="reports: List should have at least 1"):
        parse_batch({"reports": []})
    with pytest.raises(ReportRejectedError, match="reports: List should have at most 100"):
        parse_batch({"reports": [GOOD] * 101})
    with pytest.raises(ReportRejectedError, match=r"reports\.1\.level") as caught:
        parse_batch({"reports": [GOOD, {**GOOD, "level": 7}]})
    assert caught.value.fields == ("reports.1.level",)
    with pytest.raises(ReportRejectedError, match="body: too large"):
        parse_batch(b" " * 70_000)
    assert isinstance(BatchIn(reports=[ReportIn(**GOOD)]), BatchIn)


def test_time_and_place_checks(poa_base: Any) -> None:
    city = poa_base.city
    now = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC).timestamp()

    def at(offset_s: float) -> ReportIn:
        moment = dt.datetime.fromtimestamp(now + offset_s, dt.UTC)
        return ReportIn(**GOOD, observed_at=moment)

    assert check_report(ReportIn(**GOOD), city, now) == now
    assert check_report(at(-600), city, now) == now - 600
    assert check_report(at(60), city, now) == now + 60  # device clock drift
    with pytest.raises(ReportRejectedError, match="in the future") as future:
        check_report(at(600), city, now)
    assert future.value.code == "report_in_future"
    with pytest.raises(ReportRejectedError, match="s old") as old:
        check_report(at(-7200), city, now)
    assert old.value.code == "report_too_old"
    with pytest.raises(ReportRejectedError, match="outside Porto Alegre") as outside:
        check_report(ReportIn(lat=48.85, lon=2.35, kind="clear"), city, now)
    assert outside.value.code == "outside_city"


def test_error_codes() -> None:
    assert "duplicate_report" in REJECTION_CODES
    with pytest.raises(ValueError, match="unknown rejection code"):
        ReportRejectedError("x", code="nope")
    limited = RateLimitedError("slow down", retry_after_s=0)
    assert (limited.code, limited.retry_after_s) == ("rate_limited", 1)


def test_contributor_key_is_a_keyed_hash() -> None:
    token = "Zk3-abcdefghijklmnop_XY"
    key = contributor_key(token, SECRET)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert key == contributor_key(token, SECRET)
    assert key != contributor_key(token, b"another-secret-0123456789")
    assert key != hashlib.sha256(token.encode()).hexdigest()  # not a plain hash
    assert key != hmac.new(SECRET, token.encode(), hashlib.sha256).hexdigest()  # domain-separated
    assert token not in key


@pytest.mark.parametrize(
    "token", ["", "short", "x" * 129, "has space in it 123", "é" * 20, "a/b" * 8]
)
def test_malformed_tokens_are_refused_without_echoing_them(token: str) -> None:
    with pytest.raises(
        ReportRejectedError, match="X-Contributor-Token: must be 16 to 128"
    ) as caught:
        contributor_key(token, SECRET)
    assert caught.value.fields == ("X-Contributor-Token",)
    assert caught.value.code == "invalid_report"
    if token:
        assert token not in str(caught.value)


def test_short_secrets_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        contributor_key("a" * 20, b"short")


def test_address_keys_group_an_ipv6_subscriber_and_hide_the_address() -> None:
    assert network_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert network_of("::ffff:192.0.2.7") == "192.0.2.7"
    one = address_key("2001:db8:1:2:aaaa::1", SECRET)
    assert one == address_key("2001:db8:1:2:ffff:1:2:3", SECRET)  # same /64
    assert one != address_key("2001:db8:1:3::1", SECRET)
    assert address_key("192.0.2.7", SECRET) != address_key("192.0.2.8", SECRET)
    assert "192.0.2.7" not in address_key("192.0.2.7", SECRET)
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        address_key("not-an-ip", SECRET)
