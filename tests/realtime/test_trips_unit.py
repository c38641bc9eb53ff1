"""Live trips without a server: the plan a trip follows, where its traveller is, how it
projects under live state, the switch policy, the trip index, commands and client messages.

Itineraries are real ones: ``routing.plan.plan_trip`` on the Porto Alegre base, turned into
JSON by ``routing.codec.ItineraryOut`` exactly as ``GET /api/v1/plan`` sends them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import numpy as np
import pytest
from carshare_helpers import POA_CENTRE, POA_EAST, SYSTEM_ID, live

from realtime.trips import commands
from realtime.trips.commands import CommandRefusedError
from realtime.trips.engine import TripIndex
from realtime.trips.plan_view import (
    MAX_LEGS,
    ItineraryError,
    TripPlan,
    parse_plan,
    position_at,
    project,
    traveller_state,
)
from realtime.trips.policy import SwitchPolicy
from realtime.trips.protocol import (
    MAX_CLIENT_MESSAGE,
    ProtocolError,
    load_schema,
    parse_client_message,
)
from realtime.trips.sessions import TripSession, hash_token
from realtime.trips.wording import leg_note
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.overlay import OverlayHolder
from routing.plan import PlanRequest, plan_trip

Body = dict[str, Any]


def check_server_message(message: dict[str, Any]) -> None:
    """Messages built here must be valid server messages of the published schema."""
    jsonschema.Draft7Validator(load_schema()).validate(message)


def depart(base: CityBase) -> dt.datetime:
    return dt.datetime(2019, 5, 15, 13, 0, tzinfo=base.city.tz)


@pytest.fixture(scope="module")
def carshare_json(poa_base: CityBase) -> Body:
    """walk → car-share (station to station) → walk, centre to east, as the API sends it."""
    overlay = live(poa_base).current
    request = PlanRequest(
        POA_CENTRE, POA_EAST, depart(poa_base), modes=frozenset({"walk", "carshare"})
    )
    for it in plan_trip(poa_base, request, overlay):
        if it.family == ("carshare",):
            body: Body = ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)
            assert [leg["mode"] for leg in body["legs"]] == ["walk", "carshare", "walk"]
            return body
    raise AssertionError("no car-share itinerary")


@pytest.fixture(scope="module")
def transit_json(poa_base: CityBase) -> Body:
    """A walk + transit itinerary, centre to east."""
    request = PlanRequest(POA_CENTRE, POA_EAST, depart(poa_base))
    for it in plan_trip(poa_base, request):
        if any(leg.trip_id for leg in it.legs):
            body: Body = ItineraryOut.of(it).model_dump(mode="json", by_alias=True)
            return body
    raise AssertionError("no transit itinerary")


def first(body: Body, pred: Callable[[Body], bool]) -> int:
    return next(i for i, leg in enumerate(body["legs"]) if pred(leg))


def car_index(body: Body) -> int:
    return first(body, lambda leg: leg["mode"] == "carshare")


def ride_index(body: Body) -> int:
    return first(body, lambda leg: leg["trip_id"] is not None)


# -- parse_plan ----------------------------------------------------------------------------


def test_parse_plan_accepts_a_real_car_share_itinerary(
    poa_base: CityBase, carshare_json: Body
) -> None:
    plan = parse_plan(poa_base, carshare_json, live(poa_base).current)
    assert plan.json == carshare_json
    assert [leg.mode for leg in plan.legs] == ["walk", "carshare", "walk"]
    assert plan.modes() == {"walk", "carshare"}
    car = plan.legs[1]
    assert car.system_id == SYSTEM_ID
    assert car.pickup_station is not None
    assert car.dropoff_station is not None
    assert len(car.drive_edges) > 10
    assert car.drive_edges == tuple(carshare_json["legs"][1]["drive_edges"])
    assert plan.departure.isoformat() == carshare_json["departure"]
    assert plan.arrival.isoformat() == carshare_json["arrival"]
    assert plan.destination == (POA_EAST[0], POA_EAST[1])


def test_parse_plan_accepts_a_real_transit_itinerary(
    poa_base: CityBase, transit_json: Body
) -> None:
    plan = parse_plan(poa_base, transit_json)
    i = ride_index(transit_json)
    ride = plan.legs[i]
    assert ride.transit
    assert ride.trip_id == transit_json["legs"][i]["trip_id"]
    assert ride.board_index is not None
    assert ride.alight_index is not None
    assert ride.board_index < ride.alight_index
    assert "transit" in plan.modes()
    _, _, trips = plan.watched(0)
    assert ride.trip_id in trips


def _outside(body: Body) -> None:
    body["legs"][0]["geometry"]["coordinates"][0] = [-9.1393, 38.7223]  # Lisbon


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _car(key: str, value: Any) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        body["legs"][car_index(body)][key] = value

    return apply


def _backwards(body: Body) -> None:
    leg = body["legs"][0]
    leg["arrival"] = (
        dt.datetime.fromisoformat(leg["departure"]) - dt.timedelta(minutes=1)
    ).isoformat()


def _too_many(body: Body) -> None:
    body["legs"] = body["legs"] * (MAX_LEGS // len(body["legs"]) + 1)


def _edges_unchained(body: Body) -> None:
    leg = body["legs"][car_index(body)]
    leg["drive_edges"] = list(reversed(leg["drive_edges"]))


def _edges_out_of_range(body: Body) -> None:
    leg = body["legs"][car_index(body)]
    leg["drive_edges"] = [*leg["drive_edges"], 10**7]


# (case, mutation of the car-share itinerary, the field the error must name)
BAD_CARSHARE: list[tuple[str, Callable[[Body], None], str]] = [
    ("no-legs", _set(("legs",), []), "itinerary.legs"),
    ("too-many-legs", _too_many, "itinerary.legs"),
    ("legs-not-a-list", _set(("legs",), "walk"), "itinerary.legs"),
    ("arrives-before-departing", _backwards, "itinerary.legs.0.arrival"),
    ("outside-the-city", _outside, "itinerary.legs.0.geometry"),
    ("mode-missing", lambda b: b["legs"][0].pop("mode"), "itinerary.legs.0.mode"),
    ("carshare-without-system", _car("system_id", None), "itinerary.legs.1"),
    ("unknown-system", _car("system_id", "no-such-cars"), "itinerary.legs.1.system_id"),
    ("edges-out-of-range", _edges_out_of_range, "itinerary.legs.1.drive_edges"),
    ("edges-unchained", _edges_unchained, "itinerary.legs.1.drive_edges"),
    ("edges-on-a-walk", _set(("legs", 0, "drive_edges"), [1, 2]), "itinerary.legs.0.drive_edges"),
    ("not-a-street-mode", _set(("legs", 0, "mode"), "teleport"), "itinerary.legs.0.mode"),
]


def _names(error: ItineraryError, field: str) -> bool:
    return error.field == field or f"'{field}" in error.message


@pytest.mark.parametrize(
    ("mutate", "field"), [c[1:] for c in BAD_CARSHARE], ids=[c[0] for c in BAD_CARSHARE]
)
def test_parse_plan_refuses_a_bad_car_share_itinerary_naming_the_field(
    poa_base: CityBase, carshare_json: Body, mutate: Callable[[Body], None], field: str
) -> None:
    body = copy.deepcopy(carshare_json)
    mutate(body)
    with pytest.raises(ItineraryError) as caught:
        parse_plan(poa_base, body, live(poa_base).current)
    assert caught.value.code == "invalid_itinerary"
    assert _names(caught.value, field), (caught.value.field, caught.value.message)


def _ride(key: str, value: Any) -> Callable[[Body], None]:
    def apply(body: Body) -> None:
        body["legs"][ride_index(body)][key] = value

    return apply


def _swap_indexes(body: Body) -> None:
    leg = body["legs"][ride_index(body)]
    leg["board_index"], leg["alight_index"] = leg["alight_index"], leg["board_index"]


BAD_TRANSIT: list[tuple[str, Callable[[Body], None], str]] = [
    ("unknown-trip", _ride("trip_id", "no-such-trip"), "trip_id"),
    ("no-board-index", _ride("board_index", None), "board/alight"),
    ("no-alight-index", _ride("alight_index", None), "board/alight"),
    ("alights-before-boarding", _swap_indexes, "alight_index"),
]


@pytest.mark.parametrize(
    ("mutate", "named"), [c[1:] for c in BAD_TRANSIT], ids=[c[0] for c in BAD_TRANSIT]
)
def test_parse_plan_refuses_a_bad_transit_leg_naming_it(
    poa_base: CityBase, transit_json: Body, mutate: Callable[[Body], None], named: str
) -> None:
    body = copy.deepcopy(transit_json)
    mutate(body)
    i = ride_index(transit_json)
    with pytest.raises(ItineraryError) as caught:
        parse_plan(poa_base, body)
    where = f"{caught.value.field} {caught.value.message}"
    assert f"itinerary.legs.{i}" in where
    assert named in where


@pytest.mark.parametrize("body", [None, [], "itinerary", 3], ids=["null", "list", "str", "int"])
def test_parse_plan_refuses_what_is_not_an_object(poa_base: CityBase, body: Any) -> None:
    with pytest.raises(ItineraryError) as caught:
        parse_plan(poa_base, body)
    assert caught.value.field == "itinerary"


# -- where the traveller is ------------------------------------------------------------------


def _mid(plan: TripPlan, i: int, fraction: float = 0.5) -> dt.datetime:
    leg = plan.legs[i]
    return leg.departure + (leg.arrival - leg.departure) * fraction


def _on(geometry: tuple[tuple[float, float], ...], lat: float, lon: float) -> bool:
    xs = [x for x, _ in geometry]
    ys = [y for _, y in geometry]
    return min(ys) - 1e-9 <= lat <= max(ys) + 1e-9 and min(xs) - 1e-9 <= lon <= max(xs) + 1e-9


def test_position_and_state_along_a_car_share_trip(poa_base: CityBase, carshare_json: Body) -> None:
    plan = parse_plan(poa_base, carshare_json)
    walk, car, _ = plan.legs

    before = traveller_state(plan, plan.departure - dt.timedelta(minutes=5))
    assert (before.lat, before.lon) == walk.origin
    assert before.holding == "nothing"

    i, (lat, lon) = position_at(plan, plan.departure)
    assert i == 0
    assert (lat, lon) == pytest.approx(walk.origin, abs=1e-6)

    i, (lat, lon) = position_at(plan, _mid(plan, 0))
    assert i == 0
    assert _on(walk.geometry, lat, lon)
    assert traveller_state(plan, _mid(plan, 0)).holding == "nothing"

    at = _mid(plan, 1)
    i, (lat, lon) = position_at(plan, at)
    assert i == 1
    assert _on(car.geometry, lat, lon)
    assert (lat, lon) != pytest.approx(car.origin, abs=1e-5)
    assert (lat, lon) != pytest.approx(car.destination, abs=1e-5)
    state = traveller_state(plan, at)
    assert state.holding == "carshare"
    assert state.system_id == SYSTEM_ID
    assert (state.lat, state.lon) == (lat, lon)
    assert state.trip_id is None

    reported = (-30.04, -51.20)
    assert (
        traveller_state(plan, at, reported).lat,
        traveller_state(plan, at, reported).lon,
    ) == reported

    later = position_at(plan, _mid(plan, 1, 0.75))[1]
    assert later != (lat, lon)  # the schedule moves the car along

    after = plan.arrival + dt.timedelta(minutes=10)
    i, here = position_at(plan, after)
    assert i == 2
    assert here == pytest.approx(plan.destination, abs=1e-6)
    assert traveller_state(plan, after).holding == "nothing"


def test_position_and_state_aboard_a_transit_trip(poa_base: CityBase, transit_json: Body) -> None:
    plan = parse_plan(poa_base, transit_json)
    i = ride_index(transit_json)
    ride = plan.legs[i]
    assert ride.board_index is not None
    assert ride.alight_index is not None
    start = traveller_state(plan, ride.departure + dt.timedelta(seconds=1))
    assert start.trip_id == ride.trip_id
    assert start.stop_index == ride.board_index
    late = traveller_state(plan, ride.arrival - dt.timedelta(seconds=1))
    assert late.trip_id == ride.trip_id
    assert late.stop_index == ride.alight_index - 1
    middle = traveller_state(plan, _mid(plan, i))
    assert ride.board_index <= (middle.stop_index or 0) < ride.alight_index
    assert position_at(plan, _mid(plan, i))[0] == i


# -- project ---------------------------------------------------------------------------------


def _free(poa_base: CityBase) -> OverlayHolder:
    return live(poa_base)


def test_project_under_free_flow_keeps_the_planned_arrival(
    poa_base: CityBase, carshare_json: Body
) -> None:
    plan = parse_plan(poa_base, carshare_json)
    projection = project(poa_base, plan, plan.departure, _free(poa_base).current)
    assert projection.broken is None
    assert projection.arrival == plan.arrival
    assert projection.legs == ()


def test_congestion_on_the_remaining_drive_edges_delays_the_arrival(
    poa_base: CityBase, carshare_json: Body
) -> None:
    plan = parse_plan(poa_base, carshare_json)
    car = plan.legs[1]
    holder = _free(poa_base)
    edges = list(car.drive_edges)
    overlay = holder.set_multipliers(dict.fromkeys(edges, 3.0))
    drive = poa_base.streets["drive"]
    extra = float(np.sum(drive.base_time_s[edges] * 2.0))
    assert extra > 60
    projection = project(poa_base, plan, plan.departure, overlay)
    assert projection.broken is None
    assert projection.arrival is not None
    assert (projection.arrival - plan.arrival).total_seconds() == pytest.approx(extra, abs=1.0)
    assert projection.legs == ((1, int(extra), False, leg_note("congestion_ahead")),)

    # halfway along the car leg, congestion on the edges already driven does not count
    half = len(edges) // 2
    behind = _free(poa_base).set_multipliers(dict.fromkeys(edges[: half - 1], 3.0))
    assert project(poa_base, plan, _mid(plan, 1), behind).arrival == plan.arrival
    ahead = _free(poa_base).set_multipliers(dict.fromkeys(edges[half + 1 :], 3.0))
    delayed = project(poa_base, plan, _mid(plan, 1), ahead).arrival
    assert delayed is not None
    assert delayed > plan.arrival


def test_a_closed_edge_ahead_breaks_the_plan(poa_base: CityBase, carshare_json: Body) -> None:
    plan = parse_plan(poa_base, carshare_json)
    edge = plan.legs[1].drive_edges[-2]
    overlay = _free(poa_base).set_multipliers({edge: float("inf")})
    projection = project(poa_base, plan, plan.departure, overlay)
    assert projection.arrival is None
    assert projection.broken == "congestion"
    assert projection.legs[-1][0] == 1
    # a closure on a street the car does not take changes nothing
    other = next(
        e for e in range(poa_base.streets["drive"].n_edges) if e not in plan.legs[1].drive_edges
    )
    unrelated = _free(poa_base).set_multipliers({other: float("inf")})
    assert project(poa_base, plan, plan.departure, unrelated).arrival == plan.arrival


def test_no_car_left_at_the_pick_up_station_breaks_the_plan(
    poa_base: CityBase, carshare_json: Body
) -> None:
    plan = parse_plan(poa_base, carshare_json)
    empty = live(poa_base, cars=0).current
    projection = project(poa_base, plan, plan.departure, empty)
    assert projection.broken == "vehicle_unavailable"
    assert projection.arrival is None
    assert projection.detail is not None
    assert projection.detail.wire() == {
        "code": "no_vehicle",
        "params": {"station": plan.legs[1].origin_name},
    }
    assert projection.detail.text() == f"no vehicle left at {plan.legs[1].origin_name}"
    assert projection.legs[-1][3] is not None
    assert projection.legs[-1][3].code == "no_vehicle"
    # once the car is taken, an empty station behind does not matter
    assert project(poa_base, plan, _mid(plan, 1), empty).broken is None


def test_no_free_dock_at_the_drop_off_station_breaks_the_plan(
    poa_base: CityBase, carshare_json: Body
) -> None:
    plan = parse_plan(poa_base, carshare_json)
    full = live(poa_base, docks=0).current
    projection = project(poa_base, plan, _mid(plan, 1), full)
    assert projection.broken == "dock_unavailable"


def test_transit_delay_missed_connection_and_cancellation(
    poa_base: CityBase, transit_json: Body
) -> None:
    plan = parse_plan(poa_base, transit_json)
    rides = [i for i, leg in enumerate(plan.legs) if leg.transit]
    holder = OverlayHolder(poa_base.streets["drive"])
    last = rides[-1]
    late = holder.set_transit_state(trip_delays={plan.legs[last].trip_id or "": 240})
    projection = project(poa_base, plan, plan.departure, late)
    assert projection.broken is None
    assert projection.arrival == plan.arrival + dt.timedelta(seconds=240)
    assert (last, 240, False, None) in projection.legs
    if len(rides) > 1:  # the first ride 10 min late: the next connection is gone
        missed = holder.set_transit_state(trip_delays={plan.legs[rides[0]].trip_id or "": 600})
        broken = project(poa_base, plan, plan.departure, missed)
        assert broken.broken == "delay"
        assert broken.arrival is None
        assert broken.legs[-1] == (rides[1], 0, False, leg_note("connection_missed"))
        assert broken.detail is not None
        assert broken.detail.code == "connection_missed"
        assert broken.detail.params["time"] == plan.legs[rides[1]].departure.isoformat()
    trip = plan.legs[rides[0]].trip_id
    cancelled = holder.set_transit_state(cancelled_trips=[trip or ""], trip_delays={})
    gone = project(poa_base, plan, plan.departure, cancelled)
    assert gone.broken == "trip_cancelled"
    assert gone.arrival is None
    assert gone.legs[-1] == (rides[0], 0, True, leg_note("cancelled"))
    assert gone.detail is not None
    assert gone.detail.wire() == {
        "code": "trip_cancelled",
        "params": {"trip_id": trip},
    }


# -- the switch policy -------------------------------------------------------------------------

T0 = dt.datetime(2019, 5, 15, 13, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_policy_needs_three_minutes_and_ten_percent_of_the_remaining_time() -> None:
    policy = SwitchPolicy()
    assert policy.needed(T0, at(1000), None) == 180
    assert policy.needed(T0, at(3000), None) == 300
    assert policy.needed(T0, at(-50), None) == 180  # already late: the floor holds
    # 1000 s left: 3 minutes is the bar
    assert not policy.worth_suggesting(T0, at(1000), at(1000 - 179), None)
    assert policy.worth_suggesting(T0, at(1000), at(1000 - 180), None)
    # 3000 s left: 10 % (300 s) is the bar, 3 minutes is not enough
    assert not policy.worth_suggesting(T0, at(3000), at(3000 - 299), None)
    assert policy.worth_suggesting(T0, at(3000), at(3000 - 300), None)
    # a broken plan: anything that works
    assert policy.worth_suggesting(T0, None, at(99_999), 10_000.0)


def test_policy_hysteresis_after_a_declined_suggestion() -> None:
    policy = SwitchPolicy()
    # declined one saved 300 s: the next must save 300 + 180
    assert policy.needed(T0, at(1000), 300.0) == 480
    assert not policy.worth_suggesting(T0, at(1000), at(1000 - 300), 300.0)
    assert not policy.worth_suggesting(T0, at(1000), at(1000 - 479), 300.0)
    assert policy.worth_suggesting(T0, at(1000), at(1000 - 480), 300.0)
    # an open suggestion is withdrawn only below half the threshold
    assert policy.still_worth_it(None)
    assert policy.still_worth_it(90.0)
    assert not policy.still_worth_it(89.0)
    assert not policy.still_worth_it(-1.0)
    custom = SwitchPolicy(min_saving_s=60, min_fraction=0.5, hysteresis_s=30)
    assert custom.needed(T0, at(1000), None) == 500
    assert custom.needed(T0, at(100), 40.0) == 70


# -- the trip index ----------------------------------------------------------------------------


def test_trip_index_put_remove_touched(
    poa_base: CityBase, carshare_json: Body, transit_json: Body
) -> None:
    car_plan = parse_plan(poa_base, carshare_json)
    bus_plan = parse_plan(poa_base, transit_json)
    edges = car_plan.legs[1].drive_edges
    pickup = car_plan.legs[1].pickup_station
    trip = bus_plan.legs[ride_index(transit_json)].trip_id
    index = TripIndex()
    index.put("car", car_plan, 0)
    index.put("bus", bus_plan, 0)
    assert len(index) == 2
    assert "car" in index
    assert "bus" in index
    assert index.touched(edges=[edges[3]]) == {"car"}
    assert index.touched(edges=[np.int64(edges[0])]) == {"car"}
    assert index.touched(stations=[pickup]) == {"car"}
    assert index.touched(transit=[trip]) == {"bus"}
    assert index.touched(edges=[edges[0]], transit=[trip]) == {"car", "bus"}
    assert index.touched(edges=[-1], stations=["nowhere"], transit=["none"]) == set()

    # re-indexed from the last (walking) leg: nothing left to watch
    index.put("car", car_plan, 2)
    assert index.touched(edges=edges, stations=[pickup]) == set()
    assert "car" in index
    assert not any("car" in ids for ids in index.edges.values())

    index.remove("bus")
    index.remove("bus")  # twice is fine
    assert index.touched(transit=[trip]) == set()
    assert "bus" not in index
    index.remove("car")
    assert len(index) == 0
    assert not index.edges
    assert not index.stations
    assert not index.transit


# -- commands ----------------------------------------------------------------------------------

TRIP = "trip_0123456789abcdef"


def session(plan: Body) -> TripSession:
    return TripSession(
        trip_id=TRIP,
        city="porto-alegre",
        timezone="America/Sao_Paulo",
        token_hash=hash_token("t"),
        plan=plan,
        modes=["carshare", "transit", "walk"],
        started_wall=0.0,
        clock_offset_s=0.0,
    )


def suggestion(suggestion_id: str, itinerary: Body, saved: float | None = 6.5) -> Body:
    return {
        "suggestion_id": suggestion_id,
        "reason": {
            "code": "congestion",
            "message": "Traffic is jammed ahead: take another way around it.",
            "detail": None,
            "action": {"code": "detour", "params": {}},
            "leave": None,
        },
        "current_arrival": "2019-05-15T13:40:00-03:00",
        "new_arrival": "2019-05-15T13:33:30-03:00",
        "minutes_saved": saved,
        "plan_broken": False,
        "switch_at": {"name": "where you are", "lat": -30.03, "lon": -51.22, "leg_index": 0},
        "valid_until": "2019-05-15T13:20:00-03:00",
        "itinerary": itinerary,
    }


def run(mutation: commands.Mutation, s: TripSession) -> list[dict[str, Any]]:
    messages = mutation(s)
    for n, message in enumerate(messages, start=s.last_seq + 1):
        message["seq"] = n
        check_server_message(message)
    s.last_seq += len(messages)
    return messages


NOW = dt.datetime(2019, 5, 15, 13, 5, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def test_accept_makes_the_suggestion_the_plan(carshare_json: Body, transit_json: Body) -> None:
    s = session(carshare_json)
    s.suggestion = suggestion("sugg-0001", transit_json)
    with pytest.raises(CommandRefusedError) as caught:
        run(commands.accept("sugg-9999", NOW), s)
    assert caught.value.code == "unknown_suggestion"
    assert s.plan == carshare_json
    assert s.suggestion is not None
    (updated,) = run(commands.accept("sugg-0001", NOW), s)
    assert updated["type"] == "plan_updated"
    assert updated["suggestion_id"] == "sugg-0001"
    assert updated["itinerary"] == transit_json
    assert s.plan == transit_json
    assert s.plan_version == 2
    assert s.suggestion is None
    assert s.history[-1]["outcome"] == "accepted"
    # the same id again: it is known, but closed
    for stale in (commands.accept, lambda i, n: commands.close_suggestion(i, "declined", n)):
        with pytest.raises(CommandRefusedError) as caught:
            run(stale("sugg-0001", NOW), s)
        assert caught.value.code == "suggestion_closed"


def test_decline_closes_and_remembers_the_saving(carshare_json: Body, transit_json: Body) -> None:
    s = session(carshare_json)
    with pytest.raises(CommandRefusedError) as caught:  # nothing open
        run(commands.close_suggestion("sugg-0001", "declined", NOW), s)
    assert caught.value.code == "suggestion_closed"
    s.suggestion = suggestion("sugg-0002", transit_json, saved=6.5)
    (closed,) = run(commands.close_suggestion("sugg-0002", "declined", NOW), s)
    assert closed["type"] == "suggestion_closed"
    assert closed["outcome"] == "declined"
    assert s.closed_saving_s == pytest.approx(390.0)
    assert s.suggestion is None
    assert s.plan == carshare_json
    with pytest.raises(CommandRefusedError) as caught:
        run(commands.accept("sugg-0002", NOW), s)
    assert caught.value.code == "suggestion_closed"
    # a broken-plan suggestion has no saving: no hysteresis floor from it
    s.suggestion = suggestion("sugg-0003", transit_json, saved=None)
    run(commands.close_suggestion("sugg-0003", "withdrawn", NOW), s)
    assert s.closed_saving_s is None


def test_end_once_then_every_command_is_refused(carshare_json: Body, transit_json: Body) -> None:
    s = session(carshare_json)
    s.suggestion = suggestion("sugg-0004", transit_json)
    (ended,) = run(commands.end("ended", NOW), s)
    assert ended == {**ended, "type": "trip_ended", "reason": "ended", "seq": 1}
    assert s.status == "ended"
    assert s.ended_reason == "ended"
    assert s.suggestion is None
    for mutation in (
        commands.end("ended", NOW),
        commands.accept("sugg-0004", NOW),
        commands.close_suggestion("sugg-0004", "declined", NOW),
    ):
        with pytest.raises(CommandRefusedError) as caught:
            run(mutation, s)
        assert caught.value.code == "trip_ended"


# -- client messages ---------------------------------------------------------------------------

GOOD_CLIENT = [
    {"type": "auth", "token": "abc"},
    {"type": "auth", "token": "abc", "after_seq": 12},
    {"type": "position", "lat": -30.03, "lon": -51.22},
    {"type": "position", "lat": -30.03, "lon": -51.22, "accuracy_m": 8.5},
    {"type": "accept", "suggestion_id": "sugg-0001"},
    {"type": "decline", "suggestion_id": "sugg-0001"},
    {"type": "end"},
    {"type": "ping"},
]


@pytest.mark.parametrize("message", GOOD_CLIENT, ids=lambda m: "-".join(map(str, m)))
def test_documented_client_messages_are_accepted(message: dict[str, Any]) -> None:
    text = json.dumps(message)
    assert parse_client_message(text) == message
    assert parse_client_message(text.encode()) == message


BAD_CLIENT: list[tuple[str, str, str]] = [
    ("not-json", "hello there", "invalid_message"),
    ("array", "[1, 2]", "invalid_message"),
    ("string", '"ping"', "invalid_message"),
    ("unknown-type", '{"type": "teleport"}', "unknown_type"),
    ("no-type", '{"lat": 1, "lon": 2}', "unknown_type"),
    ("server-type", '{"type": "hello"}', "unknown_type"),
    ("lat-out-of-range", '{"type": "position", "lat": 91, "lon": 0}', "invalid_message"),
    ("lat-a-string", '{"type": "position", "lat": "n", "lon": 0}', "invalid_message"),
    (
        "negative-accuracy",
        '{"type": "position", "lat": 1, "lon": 2, "accuracy_m": -1}',
        "invalid_message",
    ),
    ("extra-field", '{"type": "ping", "x": 1}', "invalid_message"),
    ("accept-no-id", '{"type": "accept"}', "invalid_message"),
    ("decline-empty-id", '{"type": "decline", "suggestion_id": ""}', "invalid_message"),
    ("auth-no-token", '{"type": "auth"}', "invalid_message"),
    ("auth-negative-seq", '{"type": "auth", "token": "a", "after_seq": -1}', "invalid_message"),
    (
        "too-long",
        json.dumps({"type": "accept", "suggestion_id": "x" * MAX_CLIENT_MESSAGE}),
        "invalid_message",
    ),
]


@pytest.mark.parametrize(
    ("text", "code"), [c[1:] for c in BAD_CLIENT], ids=[c[0] for c in BAD_CLIENT]
)
def test_bad_client_messages_are_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    assert caught.value.code == code
    assert caught.value.message


def test_a_client_message_at_the_size_limit_is_still_read() -> None:
    padding = MAX_CLIENT_MESSAGE - len(json.dumps({"type": "auth", "token": ""}))
    text = json.dumps({"type": "auth", "token": "x" * padding})
    assert len(text) == MAX_CLIENT_MESSAGE
    with pytest.raises(ProtocolError) as caught:  # the token is longer than the schema allows
        parse_client_message(text)
    assert caught.value.code == "invalid_message"
    assert "at most" not in caught.value.message
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text + " ")
    assert "at most" in caught.value.message
