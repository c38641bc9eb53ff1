"""Buses share the road: Porto Alegre's buses matched to its streets, congestion delaying
them more at every later stop, closures skipping the stops on the closed street, reserved
bus lanes exempt; and transit legs drawn along shapes.txt and transfer walks along streets."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from correspondance.geo import haversine_m
from correspondance.settings import REPO_ROOT
from feeds.osm_buslanes import bus_lane_directions, load_bus_lanes
from routing.base import CityBase
from routing.overlay import OverlayHolder
from routing.plan import Itinerary, Leg, PlanRequest, plan_trip
from routing.transit_geometry import line_metres, project_stops
from routing.transit_streets import (
    compute_street_effects,
    match_transit_streets,
    street_effects,
)

POA_TZ = ZoneInfo("America/Sao_Paulo")
OSLO_TZ = ZoneInfo("Europe/Oslo")
# The README's example: a T7 bus across the centre, then the 491 + 3442
README_QUERY = PlanRequest(
    (-30.0346, -51.2177), (-30.0277, -51.1793), dt.datetime(2019, 5, 15, 13, 0, tzinfo=POA_TZ)
)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"busway:right": "lane"}, (True, False)),
        ({"busway:left": "lane"}, (False, True)),  # right-hand traffic, two-way street
        ({"busway:left": "lane", "oneway": "yes"}, (True, False)),
        ({"busway:left": "opposite_lane", "oneway": "yes"}, (False, True)),
        ({"busway": "lane"}, (True, True)),
        ({"busway": "lane", "oneway": "yes"}, (True, False)),
        ({"lanes:bus": "1"}, (True, True)),
        ({"lanes:bus:backward": "1"}, (False, True)),
        ({"bus:lanes": "|designated"}, (True, True)),
        ({"psv:lanes:forward": "|designated"}, (True, False)),
        ({"bus:lanes": "|yes|", "oneway": "yes"}, (True, False)),
        ({"lanes:bus": "0", "busway": "no"}, (False, False)),
        ({"highway": "primary"}, (False, False)),
    ],
)
def test_bus_lane_tags_say_which_direction_is_reserved(
    tags: dict[str, str], expected: tuple[bool, bool]
) -> None:
    assert bus_lane_directions(tags) == expected


def _pattern_of(base: CityBase, trip_id: str) -> int:
    index = base.timetable.trip_index(trip_id)
    assert index is not None
    return int(base.timetable.trip_pattern[index])


def test_porto_alegre_buses_are_matched_to_connected_street_paths(poa_base: CityBase) -> None:
    streets, tt = poa_base.transit_streets, poa_base.timetable
    drive = poa_base.streets["drive"]
    assert streets is not None
    modes = tt.route_mode[tt.trip_route[np.unique(tt.trip_pattern, return_index=True)[1]]]
    assert not streets.running[modes == "rail"].any()  # Trensurb has its own tracks
    assert streets.running.sum() >= 150
    assert streets.from_shape.sum() == streets.running.sum()
    matched = 0
    for p in np.flatnonzero(streets.running):
        lo, hi = int(tt.pat_stop_off[p]), int(tt.pat_stop_off[p + 1])
        for f in range(lo, hi - 1):
            edges = streets.segment_edges(f)
            if not len(edges):
                continue
            matched += 1
            # a path from this stop's street node to the next stop's, edge after edge
            assert drive.tail[edges[0]] == streets.stop_node[f]
            assert drive.head[edges[-1]] == streets.stop_node[f + 1]
            assert np.all(drive.head[edges[:-1]] == drive.tail[edges[1:]])
    assert matched > 5000
    # the inverse index finds every segment of an edge
    edge = int(streets.segment_edges(int(np.flatnonzero(np.diff(streets.seg_off))[0]))[0])
    users = streets.segments_using(np.array([edge]))
    assert all(edge in streets.segment_edges(int(f)) for f in users)
    assert len(users) == sum(edge in streets.segment_edges(f) for f in range(len(tt.pat_stops)))


def test_matched_paths_follow_the_shapes(poa_base: CityBase) -> None:
    streets, shapes, tt = poa_base.transit_streets, poa_base.transit_shapes, poa_base.timetable
    drive = poa_base.streets["drive"]
    assert streets is not None
    assert shapes is not None
    near = total = 0
    for p in np.flatnonzero(streets.running)[::10]:
        s = int(shapes.pattern_shape[p])
        lo, hi = int(shapes.shape_off[s]), int(shapes.shape_off[s + 1])
        lon, lat = shapes.lon[lo:hi], shapes.lat[lo:hi]
        f_lo, f_hi = int(tt.pat_stop_off[p]), int(tt.pat_stop_off[p + 1])
        for e in np.concatenate([streets.segment_edges(f) for f in range(f_lo, f_hi)]):
            mid = drive.edge_coords(int(e)).mean(axis=0)
            gap = float(np.min(haversine_m(lat, lon, mid[1], mid[0])))
            near += gap < 100.0
            total += 1
    assert total > 500
    assert near / total > 0.95, (near, total)


def test_reserved_bus_lanes_are_exempt_in_their_direction_only(poa_base: CityBase) -> None:
    drive, streets = poa_base.streets["drive"], poa_base.transit_streets
    assert streets is not None
    lanes = load_bus_lanes(REPO_ROOT / "data" / "porto-alegre" / "poa_osm.pbf")
    edges, ways = drive.edge_ways()
    forward_only = [w for w in lanes.values() if w.forward and not w.backward]
    with_lane = {int(e) for w in forward_only for e in edges[ways == w.way_id]}
    assert streets.exempt[sorted(with_lane)].sum() >= 30
    # a contraflow bus lane (busway:left=opposite_lane on a one-way street) is no lane for
    # the cars' direction, the only one the drive network has
    contraflow = [w for w in lanes.values() if w.backward and not w.forward]
    against = {int(e) for w in contraflow for e in edges[ways == w.way_id]}
    assert against
    assert not streets.exempt[sorted(against)].any()
    # an edge no way of which has a lane is never exempt
    assert not streets.exempt[
        np.setdiff1d(np.arange(drive.n_edges), edges[np.isin(ways, list(lanes))])
    ].any()


def _readme_ride(base: CityBase) -> tuple[Itinerary, Leg]:
    plan = plan_trip(base, README_QUERY)
    it = plan[0]
    ride = next(leg for leg in it.legs if leg.trip_id)
    assert ride.route_short_name == "T7"
    return it, ride


def _jammed_segment(base: CityBase, ride: Leg) -> tuple[int, int]:
    """(position, edge): a matched segment inside the ride, past its boarding, and an edge
    of it no bus lane exempts."""
    streets = base.transit_streets
    assert streets is not None
    assert ride.board_index is not None
    assert ride.alight_index is not None
    p = _pattern_of(base, str(ride.trip_id))
    lo = int(base.timetable.pat_stop_off[p])
    for k in range(ride.board_index + 1, ride.alight_index):
        edges = streets.segment_edges(lo + k)
        if len(edges) >= 2 and not streets.exempt[edges].any():
            return k, int(edges[len(edges) // 2])
    raise AssertionError("no matched segment on the T7 ride")


def test_congestion_delays_a_bus_more_at_every_later_stop(poa_base: CityBase) -> None:
    streets, drive = poa_base.transit_streets, poa_base.streets["drive"]
    assert streets is not None
    _, ride = _readme_ride(poa_base)
    k, edge = _jammed_segment(poa_base, ride)
    multiplier = np.ones(drive.n_edges)
    multiplier[edge] = 4.0
    effects = compute_street_effects(streets, drive, poa_base.timetable, multiplier)
    assert effects is not None
    late = effects.delays[_pattern_of(poa_base, str(ride.trip_id))]
    expected = round(float(drive.base_time_s[edge]) * 3.0)
    assert expected > 0
    assert np.all(late[: k + 1] == 0)  # stops before the jam: on time
    assert np.all(late[k + 1 :] == expected)  # every stop after it: late by the jam's cost
    # every pattern driving that street is delayed, and only those
    assert set(effects.delays) == {
        int(streets.flat_pattern[f]) for f in streets.segments_using(np.array([edge]))
    }


def test_a_reserved_bus_lane_keeps_its_buses_out_of_the_jam(poa_base: CityBase) -> None:
    streets_index, drive = poa_base.transit_streets, poa_base.streets["drive"]
    assert streets_index is not None
    lane = np.intersect1d(np.flatnonzero(streets_index.exempt), streets_index.seg_edges)
    assert len(lane)
    multiplier = np.ones(drive.n_edges)
    multiplier[lane] = 4.0
    assert compute_street_effects(streets_index, drive, poa_base.timetable, multiplier) is None
    multiplier[lane] = np.inf  # a closed street is closed to buses too
    closed = compute_street_effects(streets_index, drive, poa_base.timetable, multiplier)
    assert closed is not None
    assert closed.skips


def test_the_same_bus_arrives_later_in_traffic(poa_base: CityBase) -> None:
    _, ride = _readme_ride(poa_base)
    _k, edge = _jammed_segment(poa_base, ride)
    holder = OverlayHolder(poa_base.streets["drive"])
    jammed = holder.set_multipliers({edge: 4.0})
    effects = street_effects(poa_base, jammed)
    assert effects is not None
    assert street_effects(poa_base, jammed) is effects  # once per overlay version
    late = effects.delay_at(_pattern_of(poa_base, str(ride.trip_id)), int(ride.alight_index or 0))
    same = [
        leg
        for it in plan_trip(poa_base, README_QUERY, jammed)
        for leg in it.legs
        if leg.trip_id == ride.trip_id
    ]
    assert same, "the T7 is still offered"
    assert same[0].departure == ride.departure  # boarded before the jam: on time
    assert (same[0].arrival - ride.arrival).total_seconds() == late > 0


def test_a_closure_skips_the_stops_on_the_closed_street(poa_base: CityBase) -> None:
    streets, drive, tt = poa_base.transit_streets, poa_base.streets["drive"], poa_base.timetable
    assert streets is not None
    _, ride = _readme_ride(poa_base)
    p = _pattern_of(poa_base, str(ride.trip_id))
    lo = int(tt.pat_stop_off[p])
    # the street the bus leaves its alighting stop's predecessor on, closed at its start
    k = int(ride.alight_index or 0) - 1
    while not len(streets.segment_edges(lo + k)):
        k -= 1
    first = int(streets.segment_edges(lo + k)[0])
    holder = OverlayHolder(drive)
    closed = holder.set_multipliers({first: np.inf})
    effects = street_effects(poa_base, closed)
    assert effects is not None
    assert k in effects.skips[p]
    day = tt.day(README_QUERY.depart.date(), street=effects)
    # every day sub-pattern of that pattern neither picks up nor drops off there
    served = [
        bool(day.pat_pick[day.pat_stop_off[q] + k] or day.pat_drop[day.pat_stop_off[q] + k])
        for q in range(len(day.pat_stop_off) - 1)
        if int(tt.trip_pattern[day.trip_base[day.pat_trip_off[q]]]) == p
    ]
    assert served
    assert not any(served)
    plan = plan_trip(poa_base, README_QUERY, closed)
    for it in plan:
        for leg in it.legs:
            if leg.trip_id is not None and _pattern_of(poa_base, leg.trip_id) == p:
                assert k not in (leg.board_index, leg.alight_index), leg


# ------------------------------------------------------------------------------- geometry


def test_project_stops_cuts_a_loop_at_the_right_pass() -> None:
    # out along y = 0 and back along y = 0.00001 (≈1 m apart): the return stop must land
    # on the way back, not on the way out
    lon = np.array([0.0, 0.01, 0.01, 0.0])
    lat = np.array([0.0, 0.0, 0.00001, 0.00001])
    segs, ts = project_stops(
        lon, lat, np.array([0.002, 0.009, 0.004]), np.array([0.0, 0.0, 0.00001])
    )
    assert segs.tolist() == [0, 0, 2]
    assert ts[0] == pytest.approx(0.2)
    assert ts[1] == pytest.approx(0.9)
    assert ts[2] == pytest.approx(0.6)


def test_porto_alegre_rides_follow_their_shapes(poa_base: CityBase) -> None:
    shapes = poa_base.transit_shapes
    assert shapes is not None
    plan = plan_trip(poa_base, README_QUERY)
    rides = [leg for it in plan for leg in it.legs if leg.trip_id]
    assert rides
    for ride in rides:
        p = _pattern_of(poa_base, str(ride.trip_id))
        s = int(shapes.pattern_shape[p])
        lo, hi = int(shapes.shape_off[s]), int(shapes.shape_off[s + 1])
        # many more points than stops: the line is the shape's, not stop to stop
        assert len(ride.geometry) > ride.intermediate_stops + 2
        # it starts and ends at the stops' places on the shape
        for (x, y), place in (
            (ride.geometry[0], ride.origin),
            (ride.geometry[-1], ride.destination),
        ):
            assert float(haversine_m(y, x, place.lat, place.lon)) < 60.0
        # every point lies on the shape, and the distance is what is drawn
        for x, y in ride.geometry[1:-1]:
            assert float(np.min(haversine_m(shapes.lat[lo:hi], shapes.lon[lo:hi], y, x))) < 1.0
        assert ride.distance_m == pytest.approx(line_metres(ride.geometry), rel=1e-3)
        straight = haversine_m(
            ride.origin.lat, ride.origin.lon, ride.destination.lat, ride.destination.lon
        )
        assert ride.distance_m >= float(straight)


def test_oslo_rides_without_shapes_are_drawn_stop_to_stop(oslo_base: CityBase) -> None:
    # Nationaltheatret → Oslo S on Flytoget (no shapes.txt)
    request = PlanRequest(
        (59.9149, 10.7316),
        (59.9110, 10.7528),
        dt.datetime(2016, 12, 7, 8, 0, tzinfo=OSLO_TZ),
        modes=frozenset({"walk", "transit"}),
    )
    rides = [leg for it in plan_trip(oslo_base, request) for leg in it.legs if leg.trip_id]
    assert rides
    for ride in rides:
        assert len(ride.geometry) == ride.intermediate_stops + 2


def test_transfer_walks_are_drawn_along_the_streets(poa_base: CityBase) -> None:
    checked = 0
    for origin, destination, hour in (
        ((-30.0346, -51.2177), (-30.0277, -51.1793), 13),
        ((-30.0390, -51.2186), (-30.0600, -51.1750), 12),
        ((-30.0330, -51.1950), (-30.0650, -51.2200), 15),
    ):
        request = PlanRequest(origin, destination, dt.datetime(2019, 5, 15, hour, 0, tzinfo=POA_TZ))
        for it in plan_trip(poa_base, request):
            for prev, leg, nxt in zip(it.legs, it.legs[1:], it.legs[2:], strict=False):
                if leg.mode == "walk" and prev.trip_id and nxt.trip_id and leg.distance_m > 0:
                    assert len(leg.geometry) > 2, leg  # not a straight line
                    assert leg.distance_m == pytest.approx(
                        line_metres(leg.geometry), rel=0.03, abs=3.0
                    )
                    checked += 1
    assert checked >= 1


def test_oslo_coaches_are_matched_along_drive_paths_without_shapes(oslo_base: CityBase) -> None:
    # Oslo's airport coaches are matched where their stops are in the extract; Flytoget is
    # rail and never is; neither feed has shapes.txt
    streets = match_transit_streets(oslo_base.streets["drive"], oslo_base.timetable, {})
    tt = oslo_base.timetable
    modes = tt.route_mode[tt.trip_route[np.unique(tt.trip_pattern, return_index=True)[1]]]
    assert not streets.running[modes == "rail"].any()
    assert not streets.from_shape.any()  # no shapes.txt in either feed
    assert not streets.exempt.any()  # no lanes given
    # without shapes, coaches follow the fastest drive path between their stops
    built = oslo_base.transit_streets
    assert built is not None
    assert built.running.any()
    assert not built.from_shape.any()
    drive = oslo_base.streets["drive"]
    for f in np.flatnonzero(np.diff(built.seg_off)):
        edges = built.segment_edges(int(f))
        assert drive.tail[edges[0]] == built.stop_node[f]
        assert drive.head[edges[-1]] == built.stop_node[f + 1]


def test_with_no_way_around_a_closure_the_bus_serves_no_later_stop(poa_base: CityBase) -> None:
    streets, drive, tt = poa_base.transit_streets, poa_base.streets["drive"], poa_base.timetable
    assert streets is not None
    _, ride = _readme_ride(poa_base)
    k, edge = _jammed_segment(poa_base, ride)
    p = _pattern_of(poa_base, str(ride.trip_id))
    n = int(tt.pat_stop_off[p + 1] - tt.pat_stop_off[p])
    # the closed edge, and every other way out of the stop before it: no detour exists
    lo = int(tt.pat_stop_off[p])
    start = int(streets.stop_node[lo + k])
    multiplier = np.ones(drive.n_edges)
    multiplier[edge] = np.inf
    multiplier[drive.indptr[start] : drive.indptr[start + 1]] = np.inf
    effects = compute_street_effects(streets, drive, tt, multiplier)
    assert effects is not None
    assert set(range(k + 1, n)) <= set(effects.skips[p])
    # with only the one edge closed, the bus goes around it and serves the stops after it
    multiplier = np.ones(drive.n_edges)
    multiplier[edge] = np.inf
    around = compute_street_effects(streets, drive, tt, multiplier)
    assert around is not None
    assert not set(range(k + 2, n)) & set(around.skips.get(p, ()))
    assert around.delay_at(p, k + 1) >= 0
    assert around.delay_at(p, n - 1) == around.delay_at(p, k + 1)  # the detour, carried on
