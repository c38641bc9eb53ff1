"""Scenes on the simulated EPTC GTFS-Realtime feed, shared by the API and browser tests.

The simulator is deterministic, so a test can ask it (a copy built in the test process, same
seed) which bus *will* be cancelled at a later tick, then plan a ride on exactly that bus
before it is: :func:`rides_turning_cancelled`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from correspondance.cities import CityConfig
from realtime.gtfsrt_simulator import GtfsRtSimulator, TripSituation
from routing.base import CityBase

SERVICE_DAY = dt.date(2019, 5, 15)


@dataclass(frozen=True)
class Ride:
    """A ride on one bus between two of its stops, as a plan request asks for it."""

    trip_id: str
    origin: str  # "lat,lon" of the boarding stop
    destination: str  # "lat,lon" of the alighting stop
    depart: str  # local ISO time, a few minutes before the bus leaves the boarding stop
    board_stop_id: str
    leaves_s: int  # the bus's scheduled departure at the boarding stop (s of service day)


def simulator_of(city: CityConfig, base: CityBase, frozen_at: float | None) -> GtfsRtSimulator:
    """A copy of the city's simulator (the one the server runs), frozen at ``frozen_at``."""
    (source,) = [rt for rt in city.gtfs_rt if rt.simulate is not None]
    assert source.simulate is not None
    day = source.simulate.service_date or city.default_date
    return GtfsRtSimulator.for_transit(
        source.simulate, base.timetable.transit, day, frozen_at=frozen_at
    )


def ride_on(
    base: CityBase,
    trip_id: str,
    board: int = 1,
    stops: int = 8,
    early_s: int = 240,
    north_m: float = 0.0,
) -> Ride | None:
    """A ride on ``trip_id`` from its ``board``-th stop, ``stops`` stops long, starting
    ``north_m`` metres north of the boarding stop (a walk to it); None when the trip is
    shorter or a stop of the ride lies outside the city's bbox (the OSM extract)."""
    times = base.timetable.transit.stop_times
    rows = times[times["trip_id"] == trip_id].sort_values("stop_sequence")
    if len(rows) < board + stops + 1:
        return None
    stop_table = base.timetable.transit.stops.set_index("stop_id")
    first, last = rows.iloc[board], rows.iloc[board + stops]
    for stop_id in rows.iloc[board : board + stops + 1]["stop_id"]:
        row = stop_table.loc[stop_id]
        if not base.city.contains(float(row["stop_lat"]), float(row["stop_lon"])):
            return None

    def where(stop_id: str, north: float = 0.0) -> str:
        row = stop_table.loc[stop_id]
        lat = float(row["stop_lat"]) + north / 111_195.0
        return f"{lat:.6f},{float(row['stop_lon']):.6f}"

    leaves = int(first["departure_s"])
    at = dt.datetime.combine(SERVICE_DAY, dt.time()) + dt.timedelta(seconds=leaves - early_s)
    return Ride(
        trip_id=trip_id,
        origin=where(str(first["stop_id"]), north_m),
        destination=where(str(last["stop_id"])),
        depart=at.isoformat(timespec="seconds"),
        board_stop_id=str(first["stop_id"]),
        leaves_s=leaves,
    )


def rides_turning_cancelled(
    sim: GtfsRtSimulator,
    base: CityBase,
    after_tick: int,
    within: int,
    hours: tuple[int, int] = (12, 16),
    north_m: float = 0.0,
) -> Iterator[tuple[int, Ride]]:
    """(tick, ride) for buses on time at ``after_tick`` that the feed cancels at ``tick``
    (within ``within`` ticks), leaving between ``hours`` (service-day hours), long enough."""
    for trip in sim.trips:
        if not hours[0] * 3600 <= _seconds(trip.start_time) < hours[1] * 3600:
            continue
        tick = sim.change_tick(trip.trip_id, after_tick, cancelled=True, within=within)
        if tick is None:
            continue
        ride = ride_on(base, trip.trip_id, north_m=north_m)
        if ride is not None:
            yield tick, ride


def situation_of(sim: GtfsRtSimulator, trip_id: str) -> TripSituation:
    """What the feed says of ``trip_id`` now."""
    return next(s for s in sim.situation(sim.tick()) if s.trip_id == trip_id)


def _seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + s
