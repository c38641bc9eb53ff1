"""RAPTOR against an independent Connection Scan oracle on the 2018 NYC subway feed.

The oracle shares nothing with RAPTOR's timetable: it reads the merged GTFS tables
(``feeds.gtfs.TransitData``), builds its own connections for the day before, the day and
the day after (shifted by the real distance between service-day origins), its own crow
footpaths and its own reading of transfers.txt (station rules apply to the station's
stops, stop rules win), and scans connections in departure order. Rules it honours, like
``plan``: a footpath at the start, at most one between two rides, one at the end; a
stop's min_transfer_time only between two rides at that very stop.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numba import njit
from numpy.typing import NDArray

from correspondance.geo import haversine_m
from feeds.gtfs import TransitData, service_day_origin
from routing.gtfs_network import StopPoint, StopQuery, TransitNetwork, load_network, local_to_unix
from routing.plan_access import access_times
from routing.plan_search import stop_transit_search

NYC_FEED = Path(__file__).parents[1] / "fixtures" / "gtfs" / "nyc-subway-2018" / "nyc_subway.zip"
INF = np.int64(2**62)


# not cache=True: the module is imported both as a test and by the benchmark, and numba's
# cache would record one module name and fail to load under the other
@njit
def _scan(
    c_from,
    c_to,
    c_dep,
    c_arr,
    c_trip,
    c_pick,
    c_drop,
    n_trips,
    fp_off,
    fp_to,
    fp_dur,
    min_transfer,
    src,
    src_t,
    tgt,
    tgt_c,
):
    """Earliest arrival (INF if none) by Connection Scan; ties re-scanned to a fixpoint."""
    n_stops = fp_off.shape[0] - 1
    big = np.int64(2**62)
    walk = np.full(n_stops, big, np.int64)  # on foot: a source or after one footpath
    ride = np.full(n_stops, big, np.int64)  # alighted here
    egress = np.full(n_stops, big, np.int64)
    for i in range(tgt.shape[0]):
        egress[tgt[i]] = min(egress[tgt[i]], tgt_c[i])
    boarded = np.zeros(n_trips, np.bool_)
    start = big
    for i in range(src.shape[0]):
        walk[src[i]] = min(walk[src[i]], src_t[i])
        start = min(start, src_t[i])
    best = big
    i = np.searchsorted(c_dep, start)
    n = c_dep.shape[0]
    while i < n and c_dep[i] < best:
        j = i
        while j < n and c_dep[j] == c_dep[i]:
            j += 1
        changed = True
        while changed:
            changed = False
            for k in range(i, j):
                t = c_trip[k]
                if not boarded[t] and c_pick[k]:
                    s = c_from[k]
                    ready = walk[s]
                    if min_transfer[s] >= 0 and ride[s] < big:
                        ready = min(ready, ride[s] + min_transfer[s])
                    if ready <= c_dep[k]:
                        boarded[t] = True
                        changed = True
                if boarded[t] and c_drop[k]:
                    u = c_to[k]
                    a = c_arr[k]
                    if a < ride[u]:
                        ride[u] = a
                        changed = True
                        if egress[u] < big:
                            best = min(best, a + egress[u])
                        for e in range(fp_off[u], fp_off[u + 1]):
                            if fp_dur[e] >= 0 and a + fp_dur[e] < walk[fp_to[e]]:
                                walk[fp_to[e]] = a + fp_dur[e]
        i = j
    return best


@dataclass
class ConnectionOracle:
    """Earliest arrival between stops on one service date, by Connection Scan."""

    stop_ids: list[str]
    index: dict[str, int]
    origin_unix: int
    conn: tuple[NDArray[np.int64], ...]
    n_trips: int
    fp_off: NDArray[np.int64]
    fp_to: NDArray[np.int64]
    fp_dur: NDArray[np.int64]
    min_transfer: NDArray[np.int64]

    @classmethod
    def build(
        cls, transit: TransitData, day: dt.date, max_walk_m: float = 400.0, speed: float = 1.3
    ) -> ConnectionOracle:
        """Connections of ``day`` (± one day) and footpaths from the raw GTFS tables."""
        stops = transit.stops.reset_index(drop=True)
        stop_ids = stops["stop_id"].astype(str).tolist()
        index = {s: i for i, s in enumerate(stop_ids)}
        origin = service_day_origin(day, transit.timezone)
        st = transit.stop_times.sort_values(["trip_id", "stop_sequence"], kind="stable")
        trips = transit.trips.set_index("trip_id")["service_key"].astype(str)
        st_service = st["trip_id"].map(trips).to_numpy()
        parts = []
        for k, offset in enumerate((-1, 0, 1)):
            other = day + dt.timedelta(days=offset)
            shift = service_day_origin(other, transit.timezone) - origin
            rows = st[np.isin(st_service, list(transit.active_service_keys(other)))]
            nxt = rows.shift(-1)
            same = (rows["trip_id"] == nxt["trip_id"]).to_numpy()
            codes = pd.factorize(rows["trip_id"])[0].astype(np.int64)
            part = pd.DataFrame(
                {
                    "from": rows["stop_id"].astype(str).map(index).to_numpy(),
                    "to": nxt["stop_id"].astype(str).map(index).to_numpy(),
                    "dep": rows["departure_s"].to_numpy() + shift,
                    "arr": nxt["arrival_s"].to_numpy() + shift,
                    "trip": codes + k * 10_000_000,
                    "pick": (rows["pickup_type"] != 1).to_numpy(),
                    "drop": (nxt["drop_off_type"] != 1).to_numpy(),
                }
            )[same]
            parts.append(part)
        conns = pd.concat(parts).sort_values(["dep", "arr"], kind="stable")
        trip_codes = pd.factorize(conns["trip"])[0].astype(np.int64)
        conn = (
            conns["from"].to_numpy(np.int64),
            conns["to"].to_numpy(np.int64),
            conns["dep"].to_numpy(np.int64),
            conns["arr"].to_numpy(np.int64),
            trip_codes,
            conns["pick"].to_numpy(np.bool_),
            conns["drop"].to_numpy(np.bool_),
        )
        fp_off, fp_to, fp_dur, min_transfer = _footpaths(transit, index, max_walk_m, speed)
        return cls(
            stop_ids,
            index,
            origin,
            conn,
            int(trip_codes.max()) + 1 if len(trip_codes) else 0,
            fp_off,
            fp_to,
            fp_dur,
            min_transfer,
        )

    def footpaths_from(self, stop: int) -> dict[int, int]:
        """Footpath neighbours of a stop with their seconds (forbidden ones left out)."""
        lo, hi = self.fp_off[stop], self.fp_off[stop + 1]
        return {
            int(t): int(d)
            for t, d in zip(self.fp_to[lo:hi], self.fp_dur[lo:hi], strict=True)
            if d >= 0
        }

    def earliest_arrival(self, from_stop: str, to_stop: str, depart_unix: int) -> int | None:
        """Unix time of the earliest arrival with at least one ride, or None."""
        a, b = self.index[from_stop], self.index[to_stop]
        t0 = depart_unix - self.origin_unix
        sources = {a: t0, **{s: t0 + d for s, d in self.footpaths_from(a).items() if s != a}}
        targets = {b: 0}
        for s in range(len(self.stop_ids)):
            d = self.footpaths_from(s).get(b)
            if d is not None and s != b:
                targets[s] = d
        best = _scan(
            *self.conn,
            self.n_trips,
            self.fp_off,
            self.fp_to,
            self.fp_dur,
            self.min_transfer,
            np.array(list(sources), np.int64),
            np.array(list(sources.values()), np.int64),
            np.array(list(targets), np.int64),
            np.array(list(targets.values()), np.int64),
        )
        return None if best >= INF else int(best) + self.origin_unix


def _footpaths(
    transit: TransitData, index: dict[str, int], max_walk_m: float, speed: float
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Brute-force crow footpaths, then transfers.txt (station rules reach its stops)."""
    stops = transit.stops.reset_index(drop=True)
    lat = stops["stop_lat"].to_numpy(float)
    lon = stops["stop_lon"].to_numpy(float)
    n = len(stops)
    pairs: dict[tuple[int, int], int] = {}
    for lo in range(0, n, 256):
        rows = np.arange(lo, min(n, lo + 256))
        d = haversine_m(lat[rows, None], lon[rows, None], lat[None, :], lon[None, :])
        for r, c in zip(*np.nonzero(d <= max_walk_m), strict=True):
            a, b = int(rows[r]), int(c)
            if a != b:
                pairs[(a, b)] = int(np.ceil(d[r, c] / speed))
    min_transfer = np.zeros(n, np.int64)
    parent = stops.get("parent_station", pd.Series(pd.NA, index=stops.index)).astype("string")
    station_stops: dict[str, list[int]] = {}
    for i, p in enumerate(parent):
        if not pd.isna(p):
            station_stops.setdefault(str(p), []).append(i)
    rule: dict[tuple[int, int], tuple[int, int]] = {}  # pair → (specific, seconds | -1)
    for row in transit.transfers.itertuples(index=False):
        kind = int(row.transfer_type) if not pd.isna(row.transfer_type) else 0
        if kind not in (2, 3):
            continue
        secs = -1 if kind == 3 else int(getattr(row, "min_transfer_time", 0) or 0)
        f, t = str(row.from_stop_id), str(row.to_stop_id)
        for a in [index[f]] * (f in index) + station_stops.get(f, []):
            for b in [index[t]] * (t in index) + station_stops.get(t, []):
                specific = int(stops["stop_id"].iat[a] == f) + int(stops["stop_id"].iat[b] == t)
                old = rule.get((a, b))
                if (
                    old is None
                    or specific > old[0]
                    or (specific == old[0] and old[1] >= 0 and (secs < 0 or secs > old[1]))
                ):
                    rule[(a, b)] = (specific, secs)
    for (a, b), (_, secs) in rule.items():
        if a == b:
            min_transfer[a] = secs
        else:
            pairs[(a, b)] = secs
    keys = sorted(pairs)
    fp_off = np.zeros(n + 1, np.int64)
    for a, _ in keys:
        fp_off[a + 1] += 1
    return (
        np.cumsum(fp_off),
        np.array([b for _, b in keys], np.int64),
        np.array([pairs[k] for k in keys], np.int64),
        min_transfer,
    )


def raptor_earliest(network: TransitNetwork, query: StopQuery) -> int | None:
    """Unix earliest arrival from run_raptor (through the planner's GTFS-only access/egress)."""
    access = access_times(network, query.origin, outbound=True)
    egress = access_times(network, query.destination, outbound=False)
    journeys, day = stop_transit_search(network, query, access, egress)
    if not journeys or day is None:
        return None
    return min(j.arrival for j in journeys) + day.origin_unix


@pytest.fixture(scope="module")
def nyc() -> TransitNetwork:
    """The NYC subway network with crow footpaths (400 m, 1.3 m/s)."""
    return load_network([NYC_FEED])


# (date, first departure, window in seconds, pairs). 2018-07-04 and 2018-09-03 (Labor Day)
# are calendar_dates exceptions: weekday service removed, Sunday service added.
CASES = [
    (dt.date(2018, 7, 11), dt.time(6, 0), 15 * 3600, 60),  # a normal Wednesday
    (dt.date(2018, 7, 4), dt.time(7, 0), 14 * 3600, 45),
    (dt.date(2018, 9, 3), dt.time(8, 0), 12 * 3600, 35),
    (dt.date(2018, 7, 11), dt.time(23, 30), 29 * 60, 40),  # into Thursday's trips
    (dt.date(2018, 9, 2), dt.time(23, 30), 29 * 60, 30),  # Sunday night into Labor Day
    (dt.date(2018, 7, 12), dt.time(0, 0), 40 * 60, 20),  # Wednesday's trips after midnight
]


@pytest.mark.slow
def test_raptor_matches_connection_scan_on_nyc_subway(nyc: TransitNetwork) -> None:
    tt = nyc.timetable
    served = sorted(set(tt.transit.stop_times["stop_id"].astype(str)))
    rng = random.Random(20180711)
    checked = reached = 0
    after_midnight = 0
    for day, first, window, pairs in CASES:
        oracle = ConnectionOracle.build(tt.transit, day)
        for _ in range(pairs):
            a, b = rng.sample(served, 2)
            start = dt.datetime.combine(day, first) + dt.timedelta(seconds=rng.randrange(window))
            query = StopQuery(StopPoint(a), StopPoint(b), start)
            expected = oracle.earliest_arrival(a, b, local_to_unix(nyc, start))
            got = raptor_earliest(nyc, query)
            assert got == expected, (a, b, start.isoformat())
            checked += 1
            if got is not None:
                reached += 1
                after_midnight += got >= local_to_unix(
                    nyc, dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1)
                )
    assert checked >= 200
    assert reached >= 180  # nearly every pair is connected: the comparison has teeth
    assert after_midnight >= 30


def test_station_transfer_rules_reach_platforms(nyc: TransitNetwork) -> None:
    # transfers.txt names only stations (101 → 101, 180 s); GTFS applies them to the platforms
    tt = nyc.timetable
    north, south = tt.stop_index("101N"), tt.stop_index("101S")
    assert tt.min_transfer_s[north] == 180
    paths = dict(
        zip(
            nyc.footpaths.to[
                nyc.footpaths.offset[north] : nyc.footpaths.offset[north + 1]
            ].tolist(),
            nyc.footpaths.duration[
                nyc.footpaths.offset[north] : nyc.footpaths.offset[north + 1]
            ].tolist(),
            strict=True,
        )
    )
    assert paths[south] == 180  # not the 0 s the identical coordinates would give


STATION_PAIRS = [("D24", "127"), ("101", "631"), ("A27", "D24"), ("R16", "101")]


@pytest.mark.parametrize(("origin", "destination"), STATION_PAIRS)
def test_a_station_is_its_platforms_with_no_transfer_penalty(
    nyc: TransitNetwork, origin: str, destination: str
) -> None:
    # D24's transfers.txt says 180 s to change trains there; a query from or to the
    # station itself must not pay it (once to enter, once to leave: 6 minutes too many)
    from routing.gtfs_network import station_members
    from routing.plan import answer

    tt = nyc.timetable
    day, depart = dt.date(2018, 7, 11), dt.datetime(2018, 7, 11, 8, 17)
    oracle = ConnectionOracle.build(tt.transit, day)
    t0 = local_to_unix(nyc, depart)

    def platforms(station: str) -> list[str]:
        members = station_members(tt, tt.stop_index(station))
        assert len(members) == 3  # the station and its N and S platforms
        return [str(tt.stop_ids[m]) for m in members[1:]]

    expected = min(
        arrival
        for a in platforms(origin)
        for b in platforms(destination)
        if (arrival := oracle.earliest_arrival(a, b, t0)) is not None
    )
    query = StopQuery(StopPoint(origin), StopPoint(destination), depart)
    assert raptor_earliest(nyc, query) == expected
    best = answer(nyc, query)[0]
    assert int(best.arrival.timestamp()) == expected
    # no walk leg inside a station ("D24 → D24N" used to take the station's 3 minutes):
    # the trip boards at a platform of the origin station, or walks to another station
    for station in (origin, destination):
        inside = {station, *platforms(station)}
        for leg in best.legs:
            assert leg.mode != "walk" or not {leg.origin.stop_id, leg.destination.stop_id} <= (
                inside
            ), leg
    first = best.legs[0]
    assert first.origin.stop_id in platforms(origin) or first.origin.stop_id == origin
    assert best.departure == first.departure
