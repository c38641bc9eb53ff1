"""GTFS static feeds → one validated, merged timetable in plain tables.

gtfs-kit reads each feed (its dtype table keeps ids as strings) once :mod:`feeds.gtfs_zip`
has checked the archive; :mod:`feeds.gtfs_checks` validates what routing relies on,
collecting *every* problem before raising, and repairs what it tolerates. This module
interpolates missing times at non-timepoint stops, expands frequencies.txt, and merges
several feeds into one :class:`TransitData` whose ids stay the feeds' own unless two feeds
collide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import gtfs_kit as gk
import numpy as np
import pandas as pd

from correspondance.geo import haversine_m
from feeds.errors import FeedError, FeedValidationError
from feeds.gtfs_checks import FeedNotice, limited, tidy_feed, to_seconds, validate_feed
from feeds.gtfs_zip import read_feed_zip

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


def _interpolate_times(st: pd.DataFrame, stops: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill times at non-timepoint stops; drop trips whose first or last stop is untimed.

    Missing times are interpolated linearly between the surrounding timed stops in
    proportion to ``shape_dist_traveled`` when the trip has it at every stop, otherwise to
    the haversine distance between consecutive stops, rounded down to whole seconds.
    """
    warnings: list[str] = []
    st = st.sort_values(["trip_id", "stop_sequence"], kind="stable").reset_index(drop=True)
    arr = to_seconds(st["arrival_time"])
    dep = to_seconds(st["departure_time"])
    arr = arr.fillna(dep)
    dep = dep.fillna(arr)
    trip = st["trip_id"]
    first = trip.ne(trip.shift())
    last = trip.ne(trip.shift(-1))
    untimed_ends = st.loc[(first | last) & arr.isna(), "trip_id"].unique()
    if len(untimed_ends):
        warnings.append(
            limited("trips dropped: first or last stop has no time", untimed_ends.tolist())
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
        warnings.append(limited("trips dropped: times go backwards", bad_trips.tolist()))
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
    freq = freq.assign(start_s=to_seconds(freq["start_time"]), end_s=to_seconds(freq["end_time"]))
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
    feed = read_feed_zip(feed_id, path)
    notices = tidy_feed(feed_id, feed)
    return feed, notices, validate_feed(feed_id, path, feed)


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
