"""GTFS static feeds → one validated, merged timetable in plain tables.

gtfs-kit reads each feed (its dtype table keeps ids as strings); this module validates
what routing relies on, collecting *every* problem before raising, interpolates missing
times at non-timepoint stops, expands frequencies.txt, and merges several feeds into one
:class:`TransitData` whose ids stay the feeds' own unless two feeds collide.
"""

from __future__ import annotations

import datetime as dt
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import gtfs_kit as gk
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from correspondance.geo import haversine_m
from feeds.errors import FeedError, FeedValidationError

REQUIRED_TABLES = ("agency", "stops", "routes", "trips", "stop_times")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "stops": ("stop_id", "stop_lat", "stop_lon"),
    "routes": ("route_id", "route_type"),
    "trips": ("trip_id", "route_id", "service_id"),
    "stop_times": ("trip_id", "stop_id", "stop_sequence", "arrival_time", "departure_time"),
    "agency": ("agency_timezone",),
}
# GTFS route_type (basic and extended) → the mode name shown to travellers.
ROUTE_TYPE_MODES = {
    0: "tram",
    1: "subway",
    2: "rail",
    3: "bus",
    4: "ferry",
    5: "cable_tram",
    6: "aerial_lift",
    7: "funicular",
    11: "trolleybus",
    12: "monorail",
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


def route_type_mode(route_type: int) -> str:
    """Traveller-facing mode for a GTFS ``route_type`` (extended types by their hundreds)."""
    if route_type in ROUTE_TYPE_MODES:
        return ROUTE_TYPE_MODES[route_type]
    extended = {
        1: "rail",
        2: "coach",
        4: "subway",
        7: "bus",
        8: "trolleybus",
        9: "tram",
        10: "ferry",
        12: "ferry",
        13: "aerial_lift",
        14: "funicular",
    }
    return extended.get(route_type // 100, "transit")


@dataclass(frozen=True, eq=False)
class TransitData:
    """Merged GTFS tables with times in seconds after the service day's noon-12h.

    ``stop_times`` has one row per (trip, stop) with integer ``arrival_s``/``departure_s``,
    sorted by trip then ``stop_sequence``; ``services`` maps a feed-qualified service key
    to its trips through ``trips.service_key``.
    """

    stops: pd.DataFrame
    routes: pd.DataFrame
    trips: pd.DataFrame
    stop_times: pd.DataFrame
    transfers: pd.DataFrame
    timezone: str
    agencies: pd.DataFrame
    feeds: dict[str, gk.Feed] = field(repr=False)
    warnings: tuple[str, ...] = ()
    notices: tuple[FeedNotice, ...] = ()

    @property
    def validity(self) -> tuple[dt.date, dt.date]:
        """First and last date on which any service of any feed runs."""
        dates = [d for feed in self.feeds.values() for d in feed.get_dates()]
        if not dates:
            raise FeedError("no feed declares any service date")
        return (
            dt.datetime.strptime(min(dates), "%Y%m%d").date(),
            dt.datetime.strptime(max(dates), "%Y%m%d").date(),
        )

    def active_service_keys(self, day: dt.date) -> frozenset[str]:
        """Feed-qualified service keys running on ``day`` (calendar + calendar_dates)."""
        return _active_services(self, day)


@lru_cache(maxsize=64)
def _active_services(data: TransitData, day: dt.date) -> frozenset[str]:
    keys: set[str] = set()
    for feed_id, feed in data.feeds.items():
        keys.update(
            f"{feed_id}\x1f{s}" for s in gk.get_active_services(feed, day.strftime("%Y%m%d"))
        )
    return frozenset(keys)


MAX_UNCOMPRESSED_BYTES = 4 << 30
"""Largest total a GTFS zip may expand to (the largest public feeds are well under)."""
MAX_EXPANSION_RATIO = 100
"""Largest expansion over the zip's size: GTFS text compresses 5–15× (NYC subway 10×);
300 MB of zeros in a 397 KB zip is 750×."""
EXPANSION_SLACK_BYTES = 16 << 20
"""Allowed on top of the ratio, so that tiny, very regular feeds are never refused."""


def expansion_limit(zip_size: int) -> int:
    """How many bytes a GTFS zip of ``zip_size`` bytes may expand to.

    Parameters
    ----------
    zip_size : int
        Size of the zip file.

    Returns
    -------
    int
        ``min(MAX_UNCOMPRESSED_BYTES, MAX_EXPANSION_RATIO × zip_size + 16 MiB)``.
    """
    return min(MAX_UNCOMPRESSED_BYTES, MAX_EXPANSION_RATIO * zip_size + EXPANSION_SLACK_BYTES)


def _too_large(path: Path, limit: int, what: str) -> FeedError:
    return FeedError(
        f"{path}: refused: {what} more than {limit:,} bytes uncompressed (at most "
        f"{MAX_EXPANSION_RATIO}× the zip's size plus {EXPANSION_SLACK_BYTES >> 20} MiB, and "
        f"{MAX_UNCOMPRESSED_BYTES >> 30} GiB in all): a zip bomb, or not a GTFS feed"
    )


def _check_declared(path: Path, members: list[zipfile.ZipInfo], limit: int) -> None:
    """Refuse a zip whose members declare more than ``limit`` bytes, before expanding any."""
    if sum(m.file_size for m in members) > limit:
        raise _too_large(path, limit, "its members declare")


def _read_one(feed_id: str, path: Path) -> gk.Feed:
    if not path.is_file():
        raise FeedError(f"{path}: GTFS file not found")
    limit = expansion_limit(path.stat().st_size)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_declared(path, members, limit)
            expanded = 0
            for member in members:
                # ZipFile.testzip() swallows CRC errors (returning the name) and lets a
                # damaged deflate stream escape as zlib.error; read each member ourselves,
                # counting what it really expands to (declared sizes may lie)
                try:
                    with archive.open(member) as handle:
                        while chunk := handle.read(1 << 20):
                            expanded += len(chunk)
                            if expanded > limit:
                                raise _too_large(path, limit, "it expands to")
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise FeedError(
                        f"{path}: not a readable GTFS zip ({member.filename} is corrupt: {exc})"
                    ) from exc
    except zipfile.BadZipFile as exc:
        raise FeedError(f"{path}: not a readable GTFS zip ({exc})") from exc
    try:
        return gk.read_feed(path, dist_units="km")
    except Exception as exc:  # gtfs-kit raises many kinds on malformed CSV
        raise FeedError(f"{path}: cannot read GTFS feed ({type(exc).__name__}: {exc})") from exc


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
            shown = _limited("", keys.unique().tolist()).removeprefix(": ")
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


def _limited(kind: str, items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in list(items)[:_MAX_PROBLEMS_PER_KIND])
    more = (
        f" and {len(items) - _MAX_PROBLEMS_PER_KIND} more"
        if len(items) > _MAX_PROBLEMS_PER_KIND
        else ""
    )
    return f"{kind}: {shown}{more}"


def _seconds(series: pd.Series) -> pd.Series:
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


def _validate(feed_id: str, path: Path, feed: gk.Feed) -> list[str]:
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
            problems.append(_limited("stops with invalid coordinates", located["stop_id"].tolist()))
    if has("trips", "route_id") and has("routes", "route_id"):
        unknown_route = set(present["trips"]["route_id"]) - set(present["routes"]["route_id"])
        if unknown_route:
            problems.append(_limited("trips.txt names unknown route_id", sorted(unknown_route)))
    if has("stop_times", "trip_id") and has("trips", "trip_id"):
        unknown_trip = set(present["stop_times"]["trip_id"]) - set(present["trips"]["trip_id"])
        if unknown_trip:
            problems.append(_limited("stop_times.txt names unknown trip_id", sorted(unknown_trip)))
    if has("stop_times", "stop_id") and has("stops", "stop_id"):
        unknown_stop = set(present["stop_times"]["stop_id"]) - set(present["stops"]["stop_id"])
        if unknown_stop:
            problems.append(_limited("stop_times.txt names unknown stop_id", sorted(unknown_stop)))
    if has("stop_times", "stop_sequence") and present["stop_times"]["stop_sequence"].isna().any():
        problems.append("stop_times.txt has rows without stop_sequence")
    for column in ("arrival_time", "departure_time"):
        if has("stop_times", column):
            st = present["stop_times"]
            bad = st.loc[_seconds(st[column]) == -1, column].unique().tolist()
            if bad:
                problems.append(_limited(f"stop_times.txt {column} not HH:MM:SS", bad))
    for table, columns in (("calendar", ("start_date", "end_date")), ("calendar_dates", ("date",))):
        frame = getattr(feed, table, None)
        for column in columns:
            if frame is None or column not in frame.columns:
                continue
            text = frame[column].astype("string")
            parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
            bad = text[parsed.isna()].fillna("(empty)").unique().tolist()
            if bad:
                problems.append(_limited(f"{table}.txt {column} not a date YYYYMMDD", bad))
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


def _interpolate_times(st: pd.DataFrame, stops: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill times at non-timepoint stops; drop trips whose first or last stop is untimed.

    Missing times are interpolated linearly between the surrounding timed stops in
    proportion to ``shape_dist_traveled`` when the trip has it at every stop, otherwise to
    the haversine distance between consecutive stops, rounded down to whole seconds.
    """
    warnings: list[str] = []
    st = st.sort_values(["trip_id", "stop_sequence"], kind="stable").reset_index(drop=True)
    arr = _seconds(st["arrival_time"])
    dep = _seconds(st["departure_time"])
    arr = arr.fillna(dep)
    dep = dep.fillna(arr)
    trip = st["trip_id"]
    first = trip.ne(trip.shift())
    last = trip.ne(trip.shift(-1))
    untimed_ends = st.loc[(first | last) & arr.isna(), "trip_id"].unique()
    if len(untimed_ends):
        warnings.append(
            _limited("trips dropped: first or last stop has no time", untimed_ends.tolist())
        )
    coords = stops.set_index("stop_id")[["stop_lat", "stop_lon"]]
    lat = st["stop_id"].map(coords["stop_lat"]).to_numpy(float)
    lon = st["stop_id"].map(coords["stop_lon"]).to_numpy(float)
    step = np.zeros(len(st))
    step[1:] = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
    step[first.to_numpy()] = 0.0
    dist = pd.Series(step).groupby(trip.to_numpy()).cumsum()
    if "shape_dist_traveled" in st.columns:
        shape = pd.to_numeric(st["shape_dist_traveled"], errors="coerce")
        complete = shape.notna().groupby(trip).transform("all")
        dist = pd.Series(np.where(complete.to_numpy(), shape.to_numpy(float), dist.to_numpy(float)))
    timed = arr.notna()
    prev_t = arr.astype("Float64").where(timed).groupby(trip).ffill()
    next_t = arr.astype("Float64").where(timed).groupby(trip).bfill()
    dist_f = dist.astype(float).set_axis(st.index)
    prev_d = dist_f.where(timed).groupby(trip).ffill()
    next_d = dist_f.where(timed).groupby(trip).bfill()
    span = (next_d - prev_d).to_numpy(float)
    ratio = np.divide(
        (dist_f - prev_d).to_numpy(float), span, out=np.zeros(len(st)), where=span > 0
    )
    filled = np.floor(
        prev_t.to_numpy(float, na_value=np.nan)
        + (next_t - prev_t).to_numpy(float, na_value=np.nan) * ratio
    )
    arr_f = np.where(timed, arr.to_numpy(float, na_value=np.nan), filled)
    dep_f = np.where(timed, dep.to_numpy(float, na_value=np.nan), filled)
    st = st.assign(arrival_s=arr_f, departure_s=dep_f)
    st = st[~st["trip_id"].isin(untimed_ends)]
    st = st.astype({"arrival_s": "int64", "departure_s": "int64"})
    backwards = st.groupby("trip_id")["arrival_s"].diff() < 0
    backwards |= st["departure_s"] < st["arrival_s"]
    bad_trips = st.loc[backwards, "trip_id"].unique()
    if len(bad_trips):
        warnings.append(_limited("trips dropped: times go backwards", bad_trips.tolist()))
        st = st[~st["trip_id"].isin(bad_trips)]
    return st, warnings


def _expand_frequencies(
    freq: pd.DataFrame | None, st: pd.DataFrame, trips: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace each frequency-based trip by one trip per departure.

    A trip runs at ``start_time`` and then every ``headway_secs`` while strictly before
    ``end_time``; its stop times keep the template's offsets from its first departure.
    """
    if freq is None or freq.empty:
        return st, trips
    freq = freq.assign(start_s=_seconds(freq["start_time"]), end_s=_seconds(freq["end_time"]))
    templates = st[st["trip_id"].isin(freq["trip_id"])]
    new_st, new_trips = [], []
    # gtfs-kit reads headway_secs as an integer column; the row fields are plain scalars
    freq_rows: list[Any] = list(freq.itertuples(index=False))
    for row in freq_rows:
        rows = templates[templates["trip_id"] == row.trip_id]
        if rows.empty or int(row.headway_secs) <= 0:
            continue
        origin = int(rows["departure_s"].iloc[0])
        trip_row = trips[trips["trip_id"] == row.trip_id]
        for start in range(int(row.start_s), int(row.end_s), int(row.headway_secs)):
            new_id = f"{row.trip_id}@{start // 3600:02d}:{start % 3600 // 60:02d}:{start % 60:02d}"
            shift = start - origin
            new_st.append(
                rows.assign(
                    trip_id=new_id,
                    arrival_s=rows["arrival_s"] + shift,
                    departure_s=rows["departure_s"] + shift,
                )
            )
            new_trips.append(trip_row.assign(trip_id=new_id))
    st = pd.concat([st[~st["trip_id"].isin(freq["trip_id"])], *new_st], ignore_index=True)
    trips = pd.concat(
        [trips[~trips["trip_id"].isin(freq["trip_id"])], *new_trips], ignore_index=True
    )
    return st, trips


def _namespace(frames: list[pd.DataFrame], feed_ids: list[str], column: str) -> list[set[str]]:
    """Which ids of each feed collide with an earlier feed's (those get 'feed:' prefixed)."""
    seen: set[str] = set()
    colliding: list[set[str]] = []
    for frame in frames:
        ids = set(frame[column].astype(str))
        colliding.append(ids & seen)
        seen |= ids
    return colliding


def check_feed(feed_id: str, path: Path) -> tuple[gk.Feed, list[FeedNotice], list[str]]:
    """Read one feed, repair what :func:`tidy_feed` repairs, and validate it.

    Returns
    -------
    (gtfs_kit.Feed, notices, problems)
        The tidied feed, the faults tolerated, and the problems that make it unusable
        (empty when it is valid).

    Raises
    ------
    FeedError
        If the file is missing or unreadable.
    """
    feed = _read_one(feed_id, path)
    notices = tidy_feed(feed_id, feed)
    return feed, notices, _validate(feed_id, path, feed)


def load_gtfs(sources: Sequence[tuple[str, Path]]) -> TransitData:
    """Read, validate and merge GTFS feeds.

    Parameters
    ----------
    sources
        ``(feed_id, path)`` pairs; ``feed_id`` prefixes ids only where two feeds collide.

    Returns
    -------
    TransitData

    Raises
    ------
    FeedError
        If a file is missing or unreadable.
    FeedValidationError
        If any feed is invalid; lists every problem of every feed at once.
    """
    if not sources:
        raise FeedError("no GTFS feed given")
    feeds: dict[str, gk.Feed] = {}
    notices: list[FeedNotice] = []
    problems: list[str] = []
    for feed_id, path in sources:
        feeds[feed_id], feed_notices, feed_problems = check_feed(feed_id, path)
        notices += feed_notices
        problems += [f"{path.name}: {p}" for p in feed_problems]
    if problems:
        raise FeedValidationError(", ".join(str(p) for _, p in sources), problems)

    warnings: list[str] = []
    stops_l, routes_l, trips_l, st_l, transfers_l, agency_l = [], [], [], [], [], []
    ids = list(feeds)
    collide = {
        col: _namespace([getattr(f, table) for f in feeds.values()], ids, col)
        for table, col in (("stops", "stop_id"), ("routes", "route_id"), ("trips", "trip_id"))
    }
    for i, (feed_id, feed) in enumerate(feeds.items()):

        def rename(series: pd.Series, col: str, i: int = i, feed_id: str = feed_id) -> pd.Series:
            clash = collide[col][i]
            if not clash:
                return series.astype(str)
            return series.astype(str).map(lambda v: f"{feed_id}:{v}" if v in clash else v)

        stops = feed.stops.copy()
        if "parent_station" not in stops.columns:
            stops["parent_station"] = pd.NA
        stops = stops.assign(
            stop_id=rename(stops["stop_id"], "stop_id"),
            parent_station=stops["parent_station"].astype("string"),
            feed_id=feed_id,
        )
        routes = feed.routes.copy()
        agency = feed.agency.copy()
        if "agency_id" not in agency.columns:
            agency["agency_id"] = feed_id
        if "agency_id" not in routes.columns:
            routes["agency_id"] = agency["agency_id"].iloc[0]
        agency = agency.assign(agency_key=feed_id + ":" + agency["agency_id"].astype(str))
        routes = routes.assign(
            route_id=rename(routes["route_id"], "route_id"),
            agency_key=feed_id + ":" + routes["agency_id"].astype(str),
            feed_id=feed_id,
        )
        trips = feed.trips.copy()
        trips = trips.assign(
            trip_id=rename(trips["trip_id"], "trip_id"),
            route_id=rename(trips["route_id"], "route_id"),
            service_key=feed_id + "\x1f" + trips["service_id"].astype(str),
            feed_id=feed_id,
        )
        st = feed.stop_times.copy()
        st["trip_id"] = rename(st["trip_id"], "trip_id")
        st["stop_id"] = rename(st["stop_id"], "stop_id")
        raw_stops = feed.stops.assign(stop_id=rename(feed.stops["stop_id"], "stop_id"))
        timed_trips = st["trip_id"].unique()
        st, st_warnings = _interpolate_times(st, raw_stops)
        warnings += [f"{feed_id}: {w}" for w in st_warnings]
        # a trip whose stop times were all dropped must not linger in trips either
        dropped = np.setdiff1d(timed_trips, st["trip_id"].unique())
        trips = trips[~trips["trip_id"].isin(dropped)]
        freq = getattr(feed, "frequencies", None)
        if freq is not None and not freq.empty:
            # frequencies.txt must name the trip by its merged (possibly prefixed) id
            freq = freq.assign(trip_id=rename(freq["trip_id"], "trip_id"))
        st, trips = _expand_frequencies(freq, st, trips)
        transfers = getattr(feed, "transfers", None)
        if transfers is not None and not transfers.empty:
            transfers = transfers.assign(
                from_stop_id=rename(transfers["from_stop_id"], "stop_id"),
                to_stop_id=rename(transfers["to_stop_id"], "stop_id"),
            )
            transfers_l.append(transfers)
        stops_l.append(stops)
        routes_l.append(routes)
        trips_l.append(trips)
        st_l.append(st)
        agency_l.append(agency)

    stop_times = pd.concat(st_l, ignore_index=True)
    for column, default in (("pickup_type", 0), ("drop_off_type", 0)):
        if column not in stop_times.columns:
            stop_times[column] = default
        stop_times[column] = (
            pd.to_numeric(stop_times[column], errors="coerce").fillna(0).astype("int8")
        )
    stop_times = stop_times[
        [
            "trip_id",
            "stop_sequence",
            "stop_id",
            "arrival_s",
            "departure_s",
            "pickup_type",
            "drop_off_type",
        ]
    ]
    transfers = (
        pd.concat(transfers_l, ignore_index=True)
        if transfers_l
        else pd.DataFrame(
            columns=["from_stop_id", "to_stop_id", "transfer_type", "min_transfer_time"]
        )
    )
    timezone = str(agency_l[0]["agency_timezone"].iloc[0])
    return TransitData(
        stops=pd.concat(stops_l, ignore_index=True),
        routes=pd.concat(routes_l, ignore_index=True),
        trips=pd.concat(trips_l, ignore_index=True),
        stop_times=stop_times.reset_index(drop=True),
        transfers=transfers,
        timezone=timezone,
        agencies=pd.concat(agency_l, ignore_index=True),
        feeds=feeds,
        warnings=tuple(warnings),
        notices=tuple(notices),
    )


def service_day_origin(day: dt.date, timezone: str) -> int:
    """Unix time of the service day's time origin: local noon minus 12 hours (GTFS)."""
    from zoneinfo import ZoneInfo

    noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(timezone))
    return int(noon.timestamp()) - 12 * 3600
