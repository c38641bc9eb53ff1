"""What a GTFS feed must hold, and the faults reading repairs.

:func:`validate_feed` lists every problem that makes a feed unusable (missing tables and
columns, unknown ids, bad coordinates, times and dates) at once; :func:`tidy_feed` repairs
what other consumers tolerate (repeated keys, stray whitespace), reporting each repair as a
:class:`FeedNotice` named as the MobilityData validator names its notices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gtfs_kit as gk
import numpy as np
import pandas as pd
from numpy.typing import NDArray

REQUIRED_TABLES = ("agency", "stops", "routes", "trips", "stop_times")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "stops": ("stop_id", "stop_lat", "stop_lon"),
    "routes": ("route_id", "route_type"),
    "trips": ("trip_id", "route_id", "service_id"),
    "stop_times": ("trip_id", "stop_id", "stop_sequence", "arrival_time", "departure_time"),
    "agency": ("agency_timezone",),
}
_MAX_PROBLEMS_PER_KIND = 5
# Primary keys (GTFS reference, "Primary key") of the tables gtfs-kit reads: a repeated key
# keeps its first row, with a ``duplicate_key`` notice, as OpenTripPlanner keeps the first.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "agency": ("agency_id",),
    "stops": ("stop_id",),
    "routes": ("route_id",),
    "trips": ("trip_id",),
    "stop_times": ("trip_id", "stop_sequence"),
    "calendar": ("service_id",),
    "calendar_dates": ("service_id", "date"),
    "fare_attributes": ("fare_id",),
    "shapes": ("shape_id", "shape_pt_sequence"),
    "frequencies": ("trip_id", "start_time"),
    "transfers": (
        "from_stop_id",
        "to_stop_id",
        "from_trip_id",
        "to_trip_id",
        "from_route_id",
        "to_route_id",
    ),
}
RECOMMENDED_FILES = ("feed_info",)


@dataclass(frozen=True)
class FeedNotice:
    """A fault in a feed that reading tolerated, named as the MobilityData GTFS validator
    names its notices.

    ``code`` is ``duplicate_key`` (a repeated primary key or a repeated row: the first
    row is kept), ``leading_or_trailing_whitespaces`` (values stripped) or
    ``missing_recommended_file``; ``count`` is how many rows or values it touched.
    """

    code: str
    feed_id: str
    filename: str
    count: int
    detail: str

    def __str__(self) -> str:
        return f"{self.feed_id}: {self.code}: {self.filename}: {self.detail}"

    def as_json(self) -> dict[str, str | int]:
        """The notice as a JSON object (``GET /api/v1/feeds``)."""
        return {
            "code": self.code,
            "feed_id": self.feed_id,
            "filename": self.filename,
            "count": self.count,
            "detail": self.detail,
        }


def _strip_whitespace(frame: pd.DataFrame) -> tuple[pd.DataFrame, int, list[str]]:
    """Strip every text value; blank ones become missing. Returns the count and columns.

    Each column's distinct values are stripped, not every row's: stop_times.txt repeats
    the same few thousand ids and times hundreds of thousands of times.
    """
    changed = 0
    columns: list[str] = []
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        codes, uniques = pd.factorize(values)
        text = pd.Series(uniques, dtype="string")
        stripped = text.str.strip()
        differs = (stripped != text).to_numpy(bool, na_value=False)
        if not differs.any():
            continue
        if out is frame:
            out = frame.copy()
        fixed = stripped.mask(stripped == "")
        # code -1 (a missing value) takes the appended missing entry
        lookup = pd.concat([fixed, pd.Series([pd.NA], dtype="string")], ignore_index=True)
        out[column] = lookup.take(np.where(codes >= 0, codes, len(fixed))).set_axis(frame.index)
        changed += int(np.isin(codes, np.flatnonzero(differs)).sum())
        columns.append(str(column))
    return out, changed, columns


def _duplicated(frame: pd.DataFrame, columns: Sequence[str]) -> NDArray[np.bool_]:
    """Rows whose values in ``columns`` repeat an earlier row's (missing equals missing)."""
    codes = pd.DataFrame({c: pd.factorize(frame[c], use_na_sentinel=False)[0] for c in columns})
    return codes.duplicated(keep="first").to_numpy(bool)


def tidy_feed(feed_id: str, feed: gk.Feed) -> list[FeedNotice]:
    """Repair in place the faults real feeds carry, returning one notice per kind and file.

    Text values lose leading and trailing whitespace (``leading_or_trailing_whitespaces``);
    a row repeated verbatim, or a primary key repeated with other values, keeps its first
    row (``duplicate_key``); a missing ``feed_info.txt`` is noted
    (``missing_recommended_file``). A byte-order mark and mixed line endings need no
    repair (gtfs-kit reads UTF-8 with or without a BOM; pandas takes CRLF, LF and CR
    alike), and the validator does not flag them either.
    """
    notices: list[FeedNotice] = []
    for table, key in PRIMARY_KEYS.items():
        frame = getattr(feed, table, None)
        if frame is None or frame.empty:
            continue
        filename = f"{table}.txt"
        original = frame
        frame, changed, columns = _strip_whitespace(frame)
        if changed:
            notices.append(
                FeedNotice(
                    "leading_or_trailing_whitespaces",
                    feed_id,
                    filename,
                    changed,
                    f"{changed} value(s) stripped in {', '.join(columns)}",
                )
            )
        columns_of_key = [c for c in key if c in frame.columns] or list(frame.columns)
        clash = _duplicated(frame, columns_of_key)
        # a verbatim copy is a repeated key too: only rows repeating the key can be one
        repeated = np.zeros(len(frame), bool)
        if clash.any():
            repeated = _duplicated(frame, list(frame.columns))
        if repeated.any():
            n = int(repeated.sum())
            frame, clash = frame[~repeated], clash[~repeated]
            notices.append(
                FeedNotice(
                    "duplicate_key",
                    feed_id,
                    filename,
                    n,
                    f"{n} row(s) repeated verbatim: dropped, the first kept",
                )
            )
        if clash.any():
            n = int(clash.sum())
            keys = (
                frame.loc[clash, columns_of_key].astype("string").fillna("").agg("/".join, axis=1)
            )
            shown = limited("", keys.unique().tolist()).removeprefix(": ")
            frame = frame[~clash]
            notices.append(
                FeedNotice(
                    "duplicate_key",
                    feed_id,
                    filename,
                    n,
                    f"{n} row(s) repeat a {'/'.join(columns_of_key)} with other values "
                    f"({shown}): the first row kept",
                )
            )
        if frame is not original:
            setattr(feed, table, frame.reset_index(drop=True))
    for table in RECOMMENDED_FILES:
        if getattr(feed, table, None) is None:
            notices.append(
                FeedNotice(
                    "missing_recommended_file", feed_id, f"{table}.txt", 1, "the file is absent"
                )
            )
    return notices


def limited(kind: str, items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in list(items)[:_MAX_PROBLEMS_PER_KIND])
    more = (
        f" and {len(items) - _MAX_PROBLEMS_PER_KIND} more"
        if len(items) > _MAX_PROBLEMS_PER_KIND
        else ""
    )
    return f"{kind}: {shown}{more}"


def to_seconds(series: pd.Series) -> pd.Series:
    """'HH:MM:SS' (hours may exceed 23) → seconds; missing stays <NA>; garbage → -1."""
    text = series.astype("string").str.strip()
    parts = text.str.extract(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
    secs = (
        parts[0].astype("Float64") * 3600
        + parts[1].astype("Float64") * 60
        + parts[2].astype("Float64")
    )
    bad = text.notna() & (text != "") & secs.isna()
    return secs.mask(bad, -1).astype("Int64")


def validate_feed(feed_id: str, path: Path, feed: gk.Feed) -> list[str]:
    problems: list[str] = []
    present: dict[str, pd.DataFrame] = {}
    for table in REQUIRED_TABLES:
        frame = getattr(feed, table, None)
        if frame is None or frame.empty:
            problems.append(f"{table}.txt is missing or empty")
            continue
        missing = [c for c in REQUIRED_COLUMNS.get(table, ()) if c not in frame.columns]
        if missing:
            problems.append(f"{table}.txt lacks required column(s) {', '.join(missing)}")
        present[table] = frame
    if (feed.calendar is None or feed.calendar.empty) and (
        feed.calendar_dates is None or feed.calendar_dates.empty
    ):
        problems.append("neither calendar.txt nor calendar_dates.txt defines any service")

    def has(table: str, *columns: str) -> bool:
        # A missing table or column is already reported above; the checks that need it are
        # skipped so that every *other* problem is still found and reported at once.
        return table in present and all(c in present[table].columns for c in columns)

    if has("stops", "stop_id", "stop_lat", "stop_lon"):
        stops = present["stops"]
        bad_coords = stops[
            ~stops["stop_lat"].between(-90, 90)
            | ~stops["stop_lon"].between(-180, 180)
            | stops["stop_lat"].isna()
            | stops["stop_lon"].isna()
        ]
        located = bad_coords
        if "location_type" in stops.columns:
            # stations' entrances/nodes may lack coordinates only when location_type is 3 or 4
            located = bad_coords[~bad_coords["location_type"].isin([3, 4])]
        if len(located):
            problems.append(limited("stops with invalid coordinates", located["stop_id"].tolist()))
    if has("trips", "route_id") and has("routes", "route_id"):
        unknown_route = set(present["trips"]["route_id"]) - set(present["routes"]["route_id"])
        if unknown_route:
            problems.append(limited("trips.txt names unknown route_id", sorted(unknown_route)))
    if has("stop_times", "trip_id") and has("trips", "trip_id"):
        unknown_trip = set(present["stop_times"]["trip_id"]) - set(present["trips"]["trip_id"])
        if unknown_trip:
            problems.append(limited("stop_times.txt names unknown trip_id", sorted(unknown_trip)))
    if has("stop_times", "stop_id") and has("stops", "stop_id"):
        unknown_stop = set(present["stop_times"]["stop_id"]) - set(present["stops"]["stop_id"])
        if unknown_stop:
            problems.append(limited("stop_times.txt names unknown stop_id", sorted(unknown_stop)))
    if has("stop_times", "stop_sequence") and present["stop_times"]["stop_sequence"].isna().any():
        problems.append("stop_times.txt has rows without stop_sequence")
    for column in ("arrival_time", "departure_time"):
        if has("stop_times", column):
            st = present["stop_times"]
            bad = st.loc[to_seconds(st[column]) == -1, column].unique().tolist()
            if bad:
                problems.append(limited(f"stop_times.txt {column} not HH:MM:SS", bad))
    for table, columns in (("calendar", ("start_date", "end_date")), ("calendar_dates", ("date",))):
        frame = getattr(feed, table, None)
        for column in columns:
            if frame is None or column not in frame.columns:
                continue
            text = frame[column].astype("string")
            parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
            bad = text[parsed.isna()].fillna("(empty)").unique().tolist()
            if bad:
                problems.append(limited(f"{table}.txt {column} not a date YYYYMMDD", bad))
    if has("agency", "agency_timezone"):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if present["agency"]["agency_timezone"].isna().any():
            problems.append("agency.txt has an agency without agency_timezone")
        for tz in present["agency"]["agency_timezone"].dropna().unique():
            try:
                ZoneInfo(str(tz))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"agency.txt has unknown agency_timezone {tz!r}")
    return problems
