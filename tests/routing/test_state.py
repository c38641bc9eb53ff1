"""Replanning from a traveller's state: aboard a real EPTC bus, holding an Oslo Bysykkel
bike, holding a free-floating car-share car stuck in a jam."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from correspondance.errors import InputError
from routing.base import CityBase
from routing.overlay import OverlayHolder, SharedStation, SharedSystem
from routing.plan import Itinerary, PlanRequest, plan_trip
from routing.state import TravellerState, TripNotFoundError, replan

Chain = Callable[[Itinerary], None]
POA_CENTRE = (-30.0277, -51.2287)
POA_EAST = (-30.0587, -51.1734)
NOON = dt.datetime(2019, 5, 15, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": dt.datetime(2019, 5, 15, 13, 0), "lat": 0.0, "lon": 0.0}, "needs an aware time"),
        ({"at": NOON, "lat": -30.0}, "needs lat and lon"),
        ({"at": NOON}, "needs lat and lon"),
        ({"at": NOON, "lat": -30.0, "lon": -51.2, "holding": "bikeshare"}, "needs its system_id"),
        (
            {"at": NOON, "lat": -30.0, "lon": -51.2, "holding": "carshare", "system_id": ""},
            "needs its system_id",
        ),
        ({"at": NOON, "trip_id": "T1"}, "needs the stop_index"),
    ],
)
def test_invalid_states_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        TravellerState(**kwargs)  # type: ignore[arg-type]


def test_states_that_are_valid() -> None:
    aboard = TravellerState(at=NOON, trip_id="T1", stop_index=0)
    assert aboard.lat is None
    assert aboard.holding == "nothing"
    riding = TravellerState(at=NOON, lat=-30.0, lon=-51.2, holding="bikeshare", system_id="s")
    assert riding.system_id == "s"


def a_bus_ride(base: CityBase) -> tuple[str, int, dt.datetime, str]:
    """trip_id, boarding position, departure and boarding stop of a real EPTC ride."""
    plans = plan_trip(base, PlanRequest(POA_CENTRE, POA_EAST, NOON))
    ride = next(leg for it in plans for leg in it.legs if leg.trip_id and leg.mode == "bus")
    assert ride.trip_id is not None
    assert ride.board_index is not None
    assert ride.origin.stop_id is not None
    assert ride.alight_index is not None
    assert ride.alight_index > ride.board_index
    return ride.trip_id, ride.board_index, ride.departure, ride.origin.stop_id


def test_replan_aboard_a_real_eptc_bus(poa_base: CityBase, legs_chain: Chain) -> None:
    trip_id, board, departure, stop = a_bus_ride(poa_base)
    # on board, the bus standing at its boarding stop (position ``board`` of its trip)
    at = departure
    state = TravellerState(at=at, trip_id=trip_id, stop_index=board)
    itineraries = replan(poa_base, state, POA_EAST)
    assert itineraries
    day = poa_base.timetable.day(at.astimezone(poa_base.city.tz).date())
    for it in itineraries:
        legs_chain(it)
        first = it.legs[0]
        assert first.trip_id == trip_id
        assert first.board_index == board
        assert first.origin.stop_id == stop
        assert first.alight_index is not None
        assert first.alight_index > board
        assert it.arrival >= at
        assert it.legs[-1].destination.name == "Destination"
    assert day.n_trips > 0


def test_replan_aboard_an_unknown_trip(poa_base: CityBase) -> None:
    state = TravellerState(at=NOON, trip_id="no-such-trip", stop_index=1)
    with pytest.raises(TripNotFoundError, match="trip 'no-such-trip' does not run around 13:00"):
        replan(poa_base, state, POA_EAST)


def test_replan_aboard_past_the_last_stop(poa_base: CityBase) -> None:
    trip_id, _board, departure, _stop = a_bus_ride(poa_base)
    state = TravellerState(at=departure, trip_id=trip_id, stop_index=10_000)
    with pytest.raises(InputError, match="stop_index 10000 is not before the last stop"):
        replan(poa_base, state, POA_EAST)


def test_replan_holding_a_bysykkel_bike_docks_it_first(
    oslo_base: CityBase, bysykkel_stations: tuple[SharedStation, ...], legs_chain: Chain
) -> None:
    system = SharedSystem("oslo-bysykkel", "Oslo Bysykkel", "bicycle", free_floating_return=False)
    live = OverlayHolder(oslo_base.streets["drive"]).set_shared_mobility(
        [system], bysykkel_stations
    )
    at = dt.datetime(2016, 12, 7, 8, 0, tzinfo=oslo_base.city.tz)
    # riding along Trondheimsveien (Carl Berners plass) towards Oslo S
    state = TravellerState(
        at=at, lat=59.9262, lon=10.7757, holding="bikeshare", system_id="oslo-bysykkel"
    )
    itineraries = replan(oslo_base, state, (59.9110, 10.7600), overlay=live)
    assert itineraries
    by_id = {f"oslo-bysykkel:{s.station_id}": s for s in bysykkel_stations}
    for it in itineraries:
        legs_chain(it)
        first = it.legs[0]
        assert first.mode == "bikeshare"
        assert first.system_id == "oslo-bysykkel"
        assert first.departure == at
        assert first.destination.station_id in by_id
        dock = by_id[first.destination.station_id]
        assert dock.docks_available > 0
        assert dock.is_returning
        assert it.legs[1].mode == "walk"
    # a full dock is never used
    dock = itineraries[0].legs[0].destination.station_id
    full = tuple(
        s
        if f"oslo-bysykkel:{s.station_id}" != dock
        else s.__class__(**{**s.__dict__, "docks_available": 0})
        for s in bysykkel_stations
    )
    live2 = OverlayHolder(oslo_base.streets["drive"]).set_shared_mobility([system], full)
    for it in replan(oslo_base, state, (59.9110, 10.7600), overlay=live2):
        assert it.legs[0].destination.station_id != dock


def test_replan_holding_a_carshare_car_in_a_jam(poa_base: CityBase, legs_chain: Chain) -> None:
    system = SharedSystem("test-car", "Test car-share", "car", free_floating_return=True)
    holder = OverlayHolder(poa_base.streets["drive"])
    free = holder.set_shared_mobility([system], [])
    state = TravellerState(
        at=NOON, lat=POA_CENTRE[0], lon=POA_CENTRE[1], holding="carshare", system_id="test-car"
    )
    before = replan(poa_base, state, POA_EAST, overlay=free)
    for it in before:
        legs_chain(it)
        assert it.legs[0].mode == "carshare"
        assert it.legs[0].departure == NOON  # the car is in hand: it moves now
    car = next(it for it in before if it.family == ("carshare",))
    assert [leg.mode for leg in car.legs] == ["carshare"]
    assert car.legs[0].destination.name == "Destination"
    route = car.legs[0].drive_edges
    assert len(route) > 10

    jammed = holder.set_multipliers(dict.fromkeys(route, 8.0))
    after = replan(poa_base, state, POA_EAST, overlay=jammed)
    for it in after:
        legs_chain(it)
        assert it.legs[0].mode == "carshare"
    stuck = next(it for it in after if it.family == ("carshare",))
    assert stuck.arrival > car.arrival
    assert set(stuck.legs[0].drive_edges) != set(route)  # it drives around the jam
    families = {it.family for it in after}
    assert ("carshare", "transit") in families
