"""Street modes end to end through ``plan_trip``: Oslo Bysykkel from its real GBFS files,
bike-share to transit, car-share on test stations in Porto Alegre, own-car park & ride to
the Oslo S car park, and cancelled trips / closed stops in Porto Alegre."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from routing.base import CityBase
from routing.modes import (
    PARK_S,
    ModeContext,
    access_park_and_ride,
    access_shared,
    parking_points,
    stop_points,
)
from routing.overlay import LiveOverlay, OverlayHolder, SharedStation, SharedSystem
from routing.plan import Itinerary, PlanRequest, plan_trip

Chain = Callable[[Itinerary], None]

BYSYKKEL_ID = "oslo-bysykkel"
# Oslo: Stensparken (Bislett/St. Hanshaugen) → Grønland, 3.1 km as the crow flies
OSLO_FROM = (59.9330, 10.7330)
OSLO_TO = (59.9110, 10.7600)
# Porto Alegre: centre → Partenon (east), 6 km
POA_CENTRE = (-30.0277, -51.2287)
POA_EAST = (-30.0587, -51.1734)


def oslo_depart(base: CityBase) -> dt.datetime:
    return dt.datetime(2016, 12, 7, 8, 0, tzinfo=base.city.tz)


def poa_depart(base: CityBase) -> dt.datetime:
    return dt.datetime(2019, 5, 15, 13, 0, tzinfo=base.city.tz)


def bysykkel_overlay(base: CityBase, stations: tuple[SharedStation, ...]) -> LiveOverlay:
    holder = OverlayHolder(base.streets["drive"])
    system = SharedSystem(BYSYKKEL_ID, "Oslo Bysykkel", "bicycle", free_floating_return=False)
    return holder.set_shared_mobility([system], stations)


def station_key(place_station_id: str | None) -> str:
    assert place_station_id is not None
    system, _, station = place_station_id.partition(":")
    assert system == BYSYKKEL_ID
    return station


def only_family(itineraries: list[Itinerary], family: tuple[str, ...]) -> Itinerary:
    matching = [it for it in itineraries if it.family == family]
    assert len(matching) == 1, [it.family for it in itineraries]
    return matching[0]


def bikeshare_trip(
    base: CityBase, stations: tuple[SharedStation, ...], chain: Chain
) -> tuple[Itinerary, SharedStation, SharedStation]:
    request = PlanRequest(
        OSLO_FROM, OSLO_TO, oslo_depart(base), modes=frozenset({"walk", "bikeshare"})
    )
    itineraries = plan_trip(base, request, bysykkel_overlay(base, stations))
    for it in itineraries:
        chain(it)
    trip = only_family(itineraries, ("bikeshare",))
    assert [leg.mode for leg in trip.legs] == ["walk", "bikeshare", "walk"]
    walk_to, ride, walk_from = trip.legs
    assert ride.system_id == BYSYKKEL_ID
    assert walk_to.system_id is None
    assert walk_from.system_id is None
    by_id = {s.station_id: s for s in stations}
    pickup = by_id[station_key(ride.origin.station_id)]
    dropoff = by_id[station_key(ride.destination.station_id)]
    assert (ride.origin.lat, ride.origin.lon) == (pickup.lat, pickup.lon)
    assert (ride.destination.lat, ride.destination.lon) == (dropoff.lat, dropoff.lon)
    assert walk_to.origin.name == "Origin"
    assert walk_from.destination.name == "Destination"
    # a 3 km ride beats a 45-minute walk
    walk = only_family(itineraries, ("walk",))
    assert trip.arrival < walk.arrival
    return trip, pickup, dropoff


def test_oslo_bysykkel_uses_stations_with_bikes_and_free_docks(
    oslo_base: CityBase, bysykkel_stations: tuple[SharedStation, ...], legs_chain: Chain
) -> None:
    trip, pickup, dropoff = bikeshare_trip(oslo_base, bysykkel_stations, legs_chain)
    assert pickup.vehicles_available > 0
    assert pickup.is_renting
    assert dropoff.docks_available > 0
    assert dropoff.is_returning
    assert pickup.station_id != dropoff.station_id
    minutes = (trip.arrival - trip.departure).total_seconds() / 60
    assert 15 < minutes < 35

    emptied = tuple(
        replace(s, vehicles_available=0) if s.station_id == pickup.station_id else s
        for s in bysykkel_stations
    )
    trip2, pickup2, _dropoff2 = bikeshare_trip(oslo_base, emptied, legs_chain)
    assert pickup2.station_id != pickup.station_id
    assert pickup2.vehicles_available > 0
    assert trip2.arrival >= trip.arrival  # the best station is gone: no faster

    full = tuple(
        replace(s, docks_available=0) if s.station_id == dropoff.station_id else s
        for s in bysykkel_stations
    )
    trip3, _pickup3, dropoff3 = bikeshare_trip(oslo_base, full, legs_chain)
    assert dropoff3.station_id != dropoff.station_id
    assert dropoff3.docks_available > 0
    assert trip3.arrival >= trip.arrival


def test_oslo_bysykkel_then_transit(
    oslo_base: CityBase, bysykkel_stations: tuple[SharedStation, ...], legs_chain: Chain
) -> None:
    live = bysykkel_overlay(oslo_base, bysykkel_stations)
    ctx = ModeContext(oslo_base, live, OSLO_FROM, OSLO_TO, 1.3, 1200.0)
    chain = access_shared(ctx, live.systems[BYSYKKEL_ID])
    assert chain is not None
    stops = stop_points(oslo_base)
    cost = dict(zip(stops.names, chain.final_cost, strict=True))
    # both Flytoget stations are reached by walk → bike → walk, within 30 min
    for name in ("Oslo S", "Nationaltheatret"):
        assert 300 < cost[name] < 1800, (name, cost[name])
        segments = chain.describe(stops.names.index(name))
        assert [s.mode for s in segments] == ["walk", "bikeshare", "walk"]
        assert segments[-1].to_name == name
        assert sum(s.seconds for s in segments) == pytest.approx(cost[name])
    # stops beyond any station's reach (outside the OSM extract) stay unreached
    assert not np.all(np.isfinite(chain.final_cost))

    request = PlanRequest(
        OSLO_FROM,
        OSLO_TO,
        oslo_depart(oslo_base),
        modes=frozenset({"walk", "bikeshare", "transit"}),
    )
    itineraries = plan_trip(oslo_base, request, live)
    for it in itineraries:
        legs_chain(it)
    # Flytoget only picks up towards the airport (outside the extract): the only transit
    # "options" ride to the airport and back. They are legal, absurd, and filtered out.
    for it in itineraries:
        rides = [leg for leg in it.legs if leg.trip_id]
        ends = (
            [leg.origin.stop_id for leg in rides] + [rides[-1].destination.stop_id] if rides else []
        )
        assert len(ends) == len(set(ends)), [
            (leg.origin.name, leg.destination.name) for leg in rides
        ]
    assert only_family(itineraries, ("bikeshare",)).legs[1].system_id == BYSYKKEL_ID


def carshare_stations(
    base: CityBase, specs: list[tuple[str, float, float, int, int, bool, bool]]
) -> list[SharedStation]:
    """Test stations at the drive-network corners nearest to given coordinates."""
    drive = base.streets["drive"]
    out = []
    for station_id, lat, lon, cars, docks, renting, returning in specs:
        node = int(np.argmin((drive.node_lat - lat) ** 2 + (drive.node_lon - lon) ** 2))
        out.append(
            SharedStation(
                "test-car",
                station_id,
                f"Car station {station_id}",
                float(drive.node_lat[node]),
                float(drive.node_lon[node]),
                "car",
                cars,
                docks,
                renting,
                returning,
            )
        )
    return out


# Pickups around the centre: 'empty' (nearest, no car), 'closed' (cars, not renting), 'ok'.
# Returns around the east end: 'full' (nearest, no dock), 'no-return', 'dock'.
CAR_SPECS = [
    ("empty", -30.0280, -51.2280, 0, 5, True, True),
    ("closed", -30.0285, -51.2270, 3, 5, False, True),
    ("ok", -30.0300, -51.2250, 2, 5, True, True),
    ("full", -30.0585, -51.1740, 2, 0, True, True),
    ("no-return", -30.0580, -51.1750, 2, 5, True, False),
    ("dock", -30.0570, -51.1770, 0, 4, True, True),
]


@pytest.mark.parametrize("free_floating", [True, False])
def test_carshare_in_porto_alegre(
    poa_base: CityBase, legs_chain: Chain, free_floating: bool
) -> None:
    system = SharedSystem("test-car", "Test car-share", "car", free_floating_return=free_floating)
    stations = carshare_stations(poa_base, CAR_SPECS)
    live = OverlayHolder(poa_base.streets["drive"]).set_shared_mobility([system], stations)
    request = PlanRequest(
        POA_CENTRE, POA_EAST, poa_depart(poa_base), modes=frozenset({"walk", "carshare"})
    )
    itineraries = plan_trip(poa_base, request, live)
    for it in itineraries:
        legs_chain(it)
    trip = only_family(itineraries, ("carshare",))
    car = next(leg for leg in trip.legs if leg.mode == "carshare")
    assert car.system_id == "test-car"
    assert car.origin.station_id == "test-car:ok"  # never 'empty' (0 cars) nor 'closed'
    assert trip.legs[0].mode == "walk"
    assert len(car.drive_edges) > 10
    if free_floating:
        assert [leg.mode for leg in trip.legs] == ["walk", "carshare"]
        assert car.destination.name == "Destination"
        assert (car.destination.lat, car.destination.lon) == POA_EAST
    else:
        assert [leg.mode for leg in trip.legs] == ["walk", "carshare", "walk"]
        assert car.destination.station_id == "test-car:dock"  # not 'full', not 'no-return'
        assert trip.legs[-1].destination.name == "Destination"
    assert trip.arrival < only_family(itineraries, ("walk",)).arrival


def test_carshare_without_a_usable_pickup_offers_nothing(poa_base: CityBase) -> None:
    system = SharedSystem("test-car", "Test car-share", "car", free_floating_return=True)
    stations = carshare_stations(poa_base, [s for s in CAR_SPECS if s[0] != "ok"][:2])
    live = OverlayHolder(poa_base.streets["drive"]).set_shared_mobility([system], stations)
    request = PlanRequest(
        POA_CENTRE, POA_EAST, poa_depart(poa_base), modes=frozenset({"walk", "carshare"})
    )
    assert [it.family for it in plan_trip(poa_base, request, live)] == [("walk",)]


# Oslo: Lambertseter (south, outside the Flytoget line) → Oslo S
PR_FROM = (59.8700, 10.8100)
PR_TO = (59.9120, 10.7520)


def test_park_and_ride_to_the_oslo_s_car_park(oslo_base: CityBase, legs_chain: Chain) -> None:
    parks = parking_points(oslo_base)
    assert parks.size == 73
    assert "Oslo S p-hus" in parks.names
    live = OverlayHolder(oslo_base.streets["drive"]).current
    ctx = ModeContext(oslo_base, live, PR_FROM, PR_TO, 1.3, 1200.0)
    chain = access_park_and_ride(ctx)
    assert chain is not None
    stops = stop_points(oslo_base)
    oslo_s = stops.names.index("Oslo S")
    segments = chain.describe(oslo_s)
    assert [s.mode for s in segments] == ["car", "walk"]
    assert segments[0].to_kind == "parking"
    assert segments[0].network == "drive"
    assert segments[0].to_name == segments[1].from_name
    assert segments[1].to_name == "Oslo S"
    assert segments[0].seconds > PARK_S  # driving, plus parking

    # Oslo's bundled transit only runs to the airport and back, so the whole park & ride
    # itinerary is checked in Porto Alegre (4 public car parks in its OSM extract)
    del legs_chain


def test_park_and_ride_itinerary_in_porto_alegre(poa_base: CityBase, legs_chain: Chain) -> None:
    live = OverlayHolder(poa_base.streets["drive"]).current
    parks = parking_points(poa_base)
    request = PlanRequest(
        (-30.0346, -51.2177),
        (-30.0277, -51.1793),
        dt.datetime(2019, 5, 15, 13, 0, tzinfo=poa_base.city.tz),
        modes=frozenset({"car", "transit", "walk"}),
    )
    itineraries = plan_trip(poa_base, request, live)
    for it in itineraries:
        legs_chain(it)
    pr = only_family(itineraries, ("car", "transit"))
    car, walk, ride = pr.legs[:3]
    assert (car.mode, walk.mode) == ("car", "walk")
    assert (car.destination.lat, car.destination.lon) in set(
        zip(parks.lat.tolist(), parks.lon.tolist(), strict=True)
    )
    assert walk.destination.stop_id == ride.origin.stop_id
    assert ride.trip_id is not None
    assert ride.departure >= walk.arrival
    assert car.drive_edges  # a real drive, with edges for live congestion matching
    # driving all the way is faster here: park & ride is offered, not preferred
    assert only_family(itineraries, ("car",)).arrival < pr.arrival


def test_cancelled_trips_and_closed_stops_are_avoided(
    poa_base: CityBase, legs_chain: Chain
) -> None:
    holder = OverlayHolder(poa_base.streets["drive"])
    request = PlanRequest(POA_CENTRE, POA_EAST, poa_depart(poa_base))
    itineraries = plan_trip(poa_base, request, holder.current)
    transit = [it for it in itineraries if it.family == ("transit",)]
    assert transit
    rides = [leg for leg in transit[0].legs if leg.trip_id]
    trip_id = rides[0].trip_id
    board = rides[0].origin.stop_id
    assert trip_id is not None
    assert board is not None

    cancelled = holder.set_transit_state(cancelled_trips=[trip_id])
    after = plan_trip(poa_base, request, cancelled)
    assert any(it.family == ("transit",) for it in after)
    for it in after:
        legs_chain(it)
        assert trip_id not in {leg.trip_id for leg in it.legs}

    closed = holder.set_transit_state(cancelled_trips=[], closed_stops=[board])
    assert closed.cancelled_trips == frozenset()
    after = plan_trip(poa_base, request, closed)
    assert any(it.family == ("transit",) for it in after)
    for it in after:
        legs_chain(it)
        for leg in it.legs:
            if leg.trip_id:
                assert board not in (leg.origin.stop_id, leg.destination.stop_id)
