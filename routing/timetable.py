"""Transit timetable as arrays: the date-independent base and per-date views for RAPTOR.

The base groups trips into *patterns* (same stop sequence and pickup/drop-off rules).
A :class:`DayTimetable` selects the trips running around one service date (the previous
day's trips shifted by −24 h for after-midnight service, the next day's by +24 h) and
splits each pattern into FIFO sub-patterns so that RAPTOR's "earliest trip" scan is exact
even where trips overtake one another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from correspondance.geo import haversine_m, project_xy
from feeds.gtfs import TransitData, route_type_mode, service_day_origin
from routing.errors import NoServiceError, UnknownStopError

if TYPE_CHECKING:
    from routing.transit_streets import StreetEffects

DAY_S = 86_400
FORBIDDEN = np.int32(-2)  # footpath duration marker: transfers.txt type 3


@dataclass(frozen=True, eq=False)
class BaseTimetable:
    """Date-independent timetable arrays plus the names needed to describe legs."""

    timezone: str
    stop_ids: NDArray[np.object_]
    stop_names: NDArray[np.object_]
    stop_lat: NDArray[np.float64]
    stop_lon: NDArray[np.float64]
    route_ids: NDArray[np.object_]
    route_short: NDArray[np.object_]
    route_long: NDArray[np.object_]
    route_color: NDArray[np.object_]
    route_text_color: NDArray[np.object_]
    route_mode: NDArray[np.object_]
    route_agency: NDArray[np.object_]
    trip_ids: NDArray[np.object_]
    trip_route: NDArray[np.int64]
    trip_service: NDArray[np.int64]
    trip_headsign: NDArray[np.object_]
    trip_pattern: NDArray[np.int64]
    trip_time_off: NDArray[np.int64]
    trip_arr: NDArray[np.int64]
    trip_dep: NDArray[np.int64]
    service_keys: NDArray[np.object_]
    pat_stop_off: NDArray[np.int64]
    pat_stops: NDArray[np.int64]
    pat_pick: NDArray[np.bool_]
    pat_drop: NDArray[np.bool_]
    min_transfer_s: NDArray[np.int64]
    transfer_from: NDArray[np.int64]
    transfer_to: NDArray[np.int64]
    transfer_s: NDArray[np.int64]
    validity: tuple[dt.date, dt.date]
    transit: TransitData

    @property
    def n_stops(self) -> int:
        """Number of stops."""
        return len(self.stop_ids)

    def find_stop_index(self, stop_id: str) -> int | None:
        """Index of a stop_id, or None if the timetable has no such stop."""
        return _stop_lookup(self).get(stop_id)

    def stop_index(self, stop_id: str) -> int:
        """Index of a stop_id.

        Raises
        ------
        UnknownStopError
            If the timetable has no such stop.
        """
        index = _stop_lookup(self).get(stop_id)
        if index is None:
            raise UnknownStopError(f"unknown stop_id {stop_id!r}")
        return index

    def day(
        self,
        day: dt.date,
        delays: tuple[tuple[int, int], ...] = (),
        skips: tuple[tuple[int, tuple[int, ...]], ...] = (),
        street: StreetEffects | None = None,
    ) -> DayTimetable:
        """The timetable of trips usable on ``day`` (cached).

        ``delays`` are (base trip index, seconds) pairs from the live overlay: a delayed
        trip's times shift as a whole and the FIFO split is redone, so overtaking caused
        by a delay stays exact. ``skips`` are (base trip index, positions in its pattern)
        of stops a trip will not serve today (GTFS-RT ``SKIPPED``). ``street`` adds what
        live congestion and closures do to street-running patterns
        (:mod:`routing.transit_streets`): a delay growing along each trip, stops not served.

        Raises
        ------
        NoServiceError
            If no trip runs on that date.
        """
        return _build_day(self, day, delays, skips, street)

    def trip_index(self, trip_id: str) -> int | None:
        """Base index of a trip_id, or None."""
        return _trip_lookup(self).get(trip_id)


@lru_cache(maxsize=8)
def _trip_lookup(base: BaseTimetable) -> dict[str, int]:
    return {str(t): i for i, t in enumerate(base.trip_ids)}


@lru_cache(maxsize=8)
def _stop_lookup(base: BaseTimetable) -> dict[str, int]:
    return {str(s): i for i, s in enumerate(base.stop_ids)}


@dataclass(frozen=True, eq=False)
class DayTimetable:
    """RAPTOR arrays for one service date; times in seconds from that day's origin."""

    date: dt.date
    origin_unix: int
    pat_stop_off: NDArray[np.int64]
    pat_stops: NDArray[np.int64]
    pat_pick: NDArray[np.bool_]
    pat_drop: NDArray[np.bool_]
    pat_trip_off: NDArray[np.int64]
    pat_time_off: NDArray[np.int64]
    trip_base: NDArray[np.int64]
    trip_shift: NDArray[np.int64]
    arr: NDArray[np.int64]
    dep: NDArray[np.int64]
    stop_pat_off: NDArray[np.int64]
    stop_pat: NDArray[np.int64]
    stop_pat_pos: NDArray[np.int64]

    @property
    def n_trips(self) -> int:
        """Trips in this day's view."""
        return len(self.trip_base)


def build_base_timetable(transit: TransitData) -> BaseTimetable:
    """Group the merged feeds' trips into patterns and flatten everything into arrays."""
    stops = transit.stops.reset_index(drop=True)
    stop_idx = pd.Series(np.arange(len(stops)), index=stops["stop_id"].astype(str))
    routes = transit.routes.reset_index(drop=True)
    route_idx = pd.Series(np.arange(len(routes)), index=routes["route_id"].astype(str))
    agency_name = transit.agencies.set_index("agency_key")["agency_name"].astype(str)
    st = transit.stop_times.sort_values(["trip_id", "stop_sequence"], kind="stable")
    trips = transit.trips.set_index("trip_id").loc[st["trip_id"].unique()].reset_index()
    service_keys, trip_service = np.unique(trips["service_key"].astype(str), return_inverse=True)

    st_stop = stop_idx.loc[st["stop_id"].astype(str)].to_numpy()
    pick = st["pickup_type"].to_numpy() != 1
    drop = st["drop_off_type"].to_numpy() != 1
    trip_codes, trip_first = np.unique(st["trip_id"].to_numpy(), return_index=True)
    order = np.argsort(trip_first)
    starts = np.sort(trip_first)
    ends = np.r_[starts[1:], len(st)]
    # trips (in stop_times order) → the same order as `trips`
    trips = trips.set_index("trip_id").loc[trip_codes[order]].reset_index()
    trip_service = np.searchsorted(service_keys, trips["service_key"].astype(str).to_numpy())
    pattern_of: dict[bytes, int] = {}
    pat_stop_off = [0]
    pat_stops: list[NDArray[np.int64]] = []
    pat_pick: list[NDArray[np.bool_]] = []
    pat_drop: list[NDArray[np.bool_]] = []
    trip_pattern = np.empty(len(starts), dtype=np.int64)
    for t, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        key = (
            st_stop[lo:hi].astype(np.int64).tobytes()
            + pick[lo:hi].tobytes()
            + drop[lo:hi].tobytes()
        )
        p = pattern_of.get(key)
        if p is None:
            p = pattern_of[key] = len(pat_stops)
            pat_stops.append(st_stop[lo:hi].astype(np.int64))
            pat_pick.append(pick[lo:hi].copy())
            pat_drop.append(drop[lo:hi].copy())
            pat_stop_off.append(pat_stop_off[-1] + hi - lo)
        trip_pattern[t] = p

    min_transfer = np.zeros(len(stops), dtype=np.int64)
    rules = _transfer_rules(transit, stop_idx)
    t_from: list[int] = []
    t_to: list[int] = []
    t_secs: list[int] = []
    for (fi, ti), (_specificity, value) in rules.items():
        if fi == ti:
            min_transfer[fi] = -1 if value == FORBIDDEN else value
        else:
            t_from.append(fi)
            t_to.append(ti)
            t_secs.append(value)

    return BaseTimetable(
        timezone=transit.timezone,
        stop_ids=stops["stop_id"].astype(str).to_numpy(object),
        stop_names=stops.get("stop_name", stops["stop_id"]).fillna("").astype(str).to_numpy(object),
        stop_lat=stops["stop_lat"].to_numpy(float),
        stop_lon=stops["stop_lon"].to_numpy(float),
        route_ids=routes["route_id"].astype(str).to_numpy(object),
        route_short=_text(routes, "route_short_name"),
        route_long=_text(routes, "route_long_name"),
        route_color=_text(routes, "route_color"),
        route_text_color=_text(routes, "route_text_color"),
        route_mode=np.array([route_type_mode(int(t)) for t in routes["route_type"]], object),
        route_agency=routes["agency_key"].map(agency_name).fillna("").astype(str).to_numpy(object),
        trip_ids=trips["trip_id"].astype(str).to_numpy(object),
        trip_route=route_idx.loc[trips["route_id"].astype(str)].to_numpy().astype(np.int64),
        trip_service=trip_service.astype(np.int64),
        trip_headsign=_text(trips, "trip_headsign"),
        trip_pattern=trip_pattern,
        trip_time_off=np.r_[starts, len(st)].astype(np.int64),
        trip_arr=st["arrival_s"].to_numpy(np.int64),
        trip_dep=st["departure_s"].to_numpy(np.int64),
        service_keys=service_keys.astype(object),
        pat_stop_off=np.array(pat_stop_off, dtype=np.int64),
        pat_stops=np.concatenate(pat_stops) if pat_stops else np.zeros(0, np.int64),
        pat_pick=np.concatenate(pat_pick) if pat_pick else np.zeros(0, bool),
        pat_drop=np.concatenate(pat_drop) if pat_drop else np.zeros(0, bool),
        min_transfer_s=min_transfer,
        transfer_from=np.array(t_from, dtype=np.int64),
        transfer_to=np.array(t_to, dtype=np.int64),
        transfer_s=np.array(t_secs, dtype=np.int64),
        validity=transit.validity,
        transit=transit,
    )


def _transfer_rules(
    transit: TransitData, stop_idx: pd.Series
) -> dict[tuple[int, int], tuple[int, int]]:
    """transfers.txt types 2 and 3 as (from, to) stop index → (specificity, seconds).

    A rule naming a station applies to every stop of that station (GTFS), and a rule
    naming the stops themselves wins over one inherited from their stations. Forbidden
    (type 3) is :data:`FORBIDDEN`; duplicates keep the strictest rule.
    """
    tr = transit.transfers
    rules: dict[tuple[int, int], tuple[int, int]] = {}
    if tr.empty:
        return rules
    children: dict[str, list[str]] = {}
    stops = transit.stops
    if "parent_station" in stops.columns:
        for stop_id, parent in zip(
            stops["stop_id"].astype(str), stops["parent_station"], strict=True
        ):
            if not pd.isna(parent) and str(parent):
                children.setdefault(str(parent), []).append(stop_id)

    def members(stop_id: str) -> list[tuple[int, int]]:
        named = [(stop_id, 1), *((c, 0) for c in children.get(stop_id, ()))]
        return [(int(stop_idx[s]), exact) for s, exact in named if s in stop_idx.index]

    ttype = pd.to_numeric(tr["transfer_type"], errors="coerce").fillna(0).astype(int)
    if "min_transfer_time" not in tr.columns:
        tr = tr.assign(min_transfer_time=0)
    secs = pd.to_numeric(tr["min_transfer_time"], errors="coerce").fillna(0).astype(int)
    for f, to, kind, s in zip(
        tr["from_stop_id"].astype(str), tr["to_stop_id"].astype(str), ttype, secs, strict=True
    ):
        if kind not in (2, 3):
            continue
        value = int(FORBIDDEN) if kind == 3 else int(s)
        for fi, f_exact in members(f):
            for ti, t_exact in members(to):
                specificity = f_exact + t_exact
                old = rules.get((fi, ti))
                if (
                    old is None
                    or specificity > old[0]
                    or (
                        specificity == old[0]
                        and old[1] != FORBIDDEN
                        and (value == FORBIDDEN or value > old[1])
                    )
                ):
                    rules[(fi, ti)] = (specificity, value)
    return rules


def _text(frame: pd.DataFrame, column: str) -> NDArray[np.object_]:
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return frame[column].astype("string").fillna("").astype(str).to_numpy(object)


@lru_cache(maxsize=8)  # ≈5 MB a day; live days (delays, buses in traffic) replace each other
def _build_day(
    base: BaseTimetable,
    day: dt.date,
    delays: tuple[tuple[int, int], ...] = (),
    skips: tuple[tuple[int, tuple[int, ...]], ...] = (),
    street: StreetEffects | None = None,
) -> DayTimetable:
    delay_of = dict(delays)
    skip_of = dict(skips)
    lo, hi = base.validity
    if not lo - dt.timedelta(days=1) <= day <= hi + dt.timedelta(days=1):
        raise NoServiceError(
            f"date {day.isoformat()} is outside the feeds' service period "
            f"({lo.isoformat()} to {hi.isoformat()})"
        )
    key_index = {str(k): i for i, k in enumerate(base.service_keys)}
    chosen: list[NDArray[np.int64]] = []
    shifts: list[NDArray[np.int64]] = []
    origin = service_day_origin(day, base.timezone)
    for offset in (-1, 0, 1):
        other = day + dt.timedelta(days=offset)
        active = base.transit.active_service_keys(other)
        mask = np.zeros(len(base.service_keys), bool)
        mask[[key_index[k] for k in active if k in key_index]] = True
        trips = np.flatnonzero(mask[base.trip_service])
        # Not offset × 24 h: across a DST change the service days' origins are 23 or 25 h apart.
        shift_s = service_day_origin(other, base.timezone) - origin
        if offset == -1:  # only yesterday's trips still running after midnight matter
            last_arrival = base.trip_arr[base.trip_time_off[trips + 1] - 1]
            trips = trips[last_arrival + shift_s >= 0]
        chosen.append(trips)
        shifts.append(np.full(len(trips), shift_s, np.int64))
    if len(chosen[1]) == 0:
        raise NoServiceError(f"no transit service runs on {day.isoformat()}")
    trips = np.concatenate(chosen)
    shift = np.concatenate(shifts)

    pat_stop_off = [0]
    pat_stops: list[NDArray[np.int64]] = []
    pat_pick: list[NDArray[np.bool_]] = []
    pat_drop: list[NDArray[np.bool_]] = []
    pat_trip_off = [0]
    pat_time_off = [0]
    trip_base: list[int] = []
    trip_shift: list[int] = []
    arr_parts: list[NDArray[np.int64]] = []
    dep_parts: list[NDArray[np.int64]] = []
    by_pattern = np.argsort(base.trip_pattern[trips], kind="stable")
    trips, shift = trips[by_pattern], shift[by_pattern]
    bounds = np.flatnonzero(np.diff(base.trip_pattern[trips])) + 1
    for group in np.split(np.arange(len(trips)), bounds):
        if len(group) == 0:
            continue
        p = int(base.trip_pattern[trips[group[0]]])
        s_lo, s_hi = base.pat_stop_off[p], base.pat_stop_off[p + 1]
        n = int(s_hi - s_lo)
        offs = base.trip_time_off[trips[group]]
        idx = offs[:, None] + np.arange(n)[None, :]
        arr = base.trip_arr[idx] + shift[group][:, None]
        dep = base.trip_dep[idx] + shift[group][:, None]
        if delays:
            late = np.array([delay_of.get(int(t), 0) for t in trips[group]], np.int64)
            arr = arr + late[:, None]
            dep = dep + late[:, None]
        street_skip: tuple[int, ...] = ()
        if street is not None:
            in_traffic = street.delays.get(p)
            if in_traffic is not None:  # the same growing delay for every trip: FIFO kept
                arr = arr + in_traffic[None, :]
                dep = dep + in_traffic[None, :]
            street_skip = street.skips.get(p, ())
        order = np.lexsort((arr[:, -1], dep[:, 0]))
        # Greedy FIFO chains: a trip joins the first chain it never overtakes.
        chains: list[list[int]] = []
        for row in order:
            for chain in chains:
                tip = chain[-1]
                if np.all(dep[row] >= dep[tip]) and np.all(arr[row] >= arr[tip]):
                    chain.append(int(row))
                    break
            else:
                chains.append([int(row)])
        # trips skipping stops (GTFS-RT SKIPPED) serve them neither way: they get their own
        # sub-pattern; a subset of a FIFO chain is still FIFO
        pieces: list[tuple[tuple[int, ...], list[int]]] = []
        for chain in chains:
            by_skip: dict[tuple[int, ...], list[int]] = {}
            for row in chain:
                by_skip.setdefault(skip_of.get(int(trips[group[row]]), ()), []).append(row)
            pieces += list(by_skip.items())
        for skipped, chain in pieces:
            rows = np.array(chain)
            pick = base.pat_pick[s_lo:s_hi]
            drop = base.pat_drop[s_lo:s_hi]
            unserved = sorted(set(skipped) | set(street_skip))
            if unserved:
                pick, drop = pick.copy(), drop.copy()
                pick[unserved] = False
                drop[unserved] = False
            pat_stops.append(base.pat_stops[s_lo:s_hi])
            pat_pick.append(pick)
            pat_drop.append(drop)
            pat_stop_off.append(pat_stop_off[-1] + n)
            pat_trip_off.append(pat_trip_off[-1] + len(rows))
            pat_time_off.append(pat_time_off[-1] + len(rows) * n)
            trip_base.extend(trips[group[rows]].tolist())
            trip_shift.extend(shift[group[rows]].tolist())
            arr_parts.append(arr[rows].ravel())
            dep_parts.append(dep[rows].ravel())

    flat_stops = np.concatenate(pat_stops)
    flat_pat = np.repeat(np.arange(len(pat_stops)), np.diff(pat_stop_off))
    flat_pos = np.arange(len(flat_stops)) - np.repeat(
        np.array(pat_stop_off[:-1]), np.diff(pat_stop_off)
    )
    by_stop = np.lexsort((flat_pos, flat_pat, flat_stops))
    stop_pat_off = np.zeros(base.n_stops + 1, np.int64)
    np.add.at(stop_pat_off, flat_stops + 1, 1)
    return DayTimetable(
        date=day,
        origin_unix=origin,
        pat_stop_off=np.array(pat_stop_off, np.int64),
        pat_stops=flat_stops,
        pat_pick=np.concatenate(pat_pick),
        pat_drop=np.concatenate(pat_drop),
        pat_trip_off=np.array(pat_trip_off, np.int64),
        pat_time_off=np.array(pat_time_off, np.int64),
        trip_base=np.array(trip_base, np.int64),
        trip_shift=np.array(trip_shift, np.int64),
        arr=np.concatenate(arr_parts),
        dep=np.concatenate(dep_parts),
        stop_pat_off=np.cumsum(stop_pat_off),
        stop_pat=flat_pat[by_stop].astype(np.int64),
        stop_pat_pos=flat_pos[by_stop].astype(np.int64),
    )


def crow_footpaths(
    base: BaseTimetable, max_distance_m: float
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Pairs of distinct stops at most ``max_distance_m`` apart as the crow flies.

    Returns ``(from, to, metres)`` with both directions listed.
    """
    from scipy.spatial import cKDTree

    lat0 = float(np.mean(base.stop_lat)) if base.n_stops else 0.0
    xy = project_xy(base.stop_lat, base.stop_lon, lat0)
    # query a little wider than the planar radius, then keep exact haversine distances
    pairs = cKDTree(xy).query_pairs(max_distance_m * 1.01 + 1, output_type="ndarray")
    if len(pairs) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    a, b = pairs[:, 0], pairs[:, 1]
    d = haversine_m(base.stop_lat[a], base.stop_lon[a], base.stop_lat[b], base.stop_lon[b])
    keep = d <= max_distance_m
    a, b, d = a[keep], b[keep], d[keep]
    return np.r_[a, b].astype(np.int64), np.r_[b, a].astype(np.int64), np.r_[d, d]
