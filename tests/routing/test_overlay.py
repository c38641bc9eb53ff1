"""The live overlay: consistent snapshots for readers, atomic validated writes, congestion
by OSM way (the r5r Porto Alegre congestion scenario), and its effect on car trips."""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest

from correspondance.errors import InputError
from correspondance.settings import REPO_ROOT
from feeds.osm import load_street_graphs
from routing.base import CityBase
from routing.modes import ModeContext, direct
from routing.overlay import OverlayHolder
from routing.plan import PlanRequest, plan_trip
from routing.streets import compile_street_graph

POA = REPO_ROOT / "data" / "porto-alegre"
CONGESTION_CSV = POA / "poa_osm_congestion.csv"
DEPART = dt.datetime(2019, 5, 15, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
# Centre (Praça da Alfândega area) → east side (Avenida Ipiranga, Partenon)
CENTRE = (-30.0277, -51.2287)
EAST = (-30.0587, -51.1734)


def car_seconds(
    base: CityBase,
    live_overlay: object,
    origin: tuple[float, float],
    destination: tuple[float, float],
) -> tuple[float, tuple[int, ...]]:
    """Door-to-door seconds of the own-car option and its drive edges (inf, () if none)."""
    ctx = ModeContext(base, live_overlay, origin, destination, 1.3, 1200.0)  # type: ignore[arg-type]
    chain = direct(ctx, "car")
    if not np.isfinite(chain.final_cost[0]):
        return float("inf"), ()
    (segment,) = chain.describe(0)
    return float(chain.final_cost[0]), segment.edges


def test_reader_keeps_its_snapshot_while_the_writer_publishes(poa_base: CityBase) -> None:
    holder = OverlayHolder(poa_base.streets["drive"])
    before = holder.current
    seen = before.drive_multiplier
    after = holder.set_multipliers({0: 3.0, 7: np.inf})
    assert before.version == 0
    assert after.version == 1
    assert holder.current is after
    assert seen[0] == 1.0
    assert seen[7] == 1.0
    assert before.drive_multiplier[0] == 1.0
    assert after.drive_multiplier[0] == 3.0
    assert after.drive_multiplier[7] == np.inf
    drive = poa_base.streets["drive"]
    assert before.drive_weights(drive)[0] == drive.base_time_s[0]
    assert after.drive_weights(drive)[0] == pytest.approx(3 * drive.base_time_s[0])


def test_a_thousand_changes_in_one_call_are_all_visible_next(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    holder = OverlayHolder(drive)
    rng = np.random.default_rng(7)
    edges = rng.choice(drive.n_edges, 1000, replace=False)
    values = 1.0 + rng.random(1000) * 4
    holder.set_multipliers(dict(zip(edges.tolist(), values.tolist(), strict=True)))
    live = holder.current
    assert live.version == 1
    np.testing.assert_array_equal(live.drive_multiplier[edges], values)
    untouched = np.ones(drive.n_edges, bool)
    untouched[edges] = False
    assert np.all(live.drive_multiplier[untouched] == 1.0)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({-1: 2.0}, r"unknown drive edge id\(s\): \[-1\]"),
        ({10**9: 2.0}, r"unknown drive edge id\(s\): \[1000000000\]"),
        ({3: 0.5}, "multipliers must be ≥ 1"),
        ({3: float("nan")}, "multipliers must be ≥ 1"),
        ({3: 2.0, 4: 0.99}, "multipliers must be ≥ 1"),
    ],
)
def test_invalid_updates_raise_and_change_nothing(
    poa_base: CityBase, updates: dict[int, float], message: str
) -> None:
    holder = OverlayHolder(poa_base.streets["drive"])
    holder.set_multipliers({3: 1.5})
    before = holder.current
    with pytest.raises(InputError, match=message):
        holder.set_multipliers(updates)
    assert holder.current is before
    assert holder.current.version == 1
    assert holder.current.drive_multiplier[3] == 1.5
    assert holder.current.drive_multiplier[4] == 1.0


def test_published_arrays_are_read_only(poa_base: CityBase) -> None:
    holder = OverlayHolder(poa_base.streets["drive"])
    for live in (holder.current, holder.set_multipliers({1: 2.0})):
        with pytest.raises(ValueError, match="read-only"):
            live.drive_multiplier[1] = 5.0
    assert holder.current.drive_multiplier[1] == 2.0


def test_way_multipliers_from_the_congestion_csv_hit_exactly_those_ways() -> None:
    # A drive network compiled here from the OSM extract, so the oracle is osmnx's own
    # edge osmids (a list where simplification merged several ways into one edge).
    graph = load_street_graphs(POA / "poa_osm.pbf", ("drive",))["drive"]
    drive = compile_street_graph("drive", graph)
    with CONGESTION_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 61
    assert {r["max_speed"] for r in rows} == {"0.5"}
    ways = {int(r["osm_id"]) for r in rows}
    index = {node: i for i, node in enumerate(graph.nodes)}
    listed = list(graph.edges(data=True))
    order = sorted(range(len(listed)), key=lambda k: index[listed[k][0]])  # compile's order
    expected = set()
    for edge, k in enumerate(order):
        osmid = listed[k][2]["osmid"]
        if ways & {int(w) for w in (osmid if isinstance(osmid, list) else [osmid])}:
            expected.add(edge)
    holder = OverlayHolder(drive)
    live = holder.set_way_multipliers(dict.fromkeys(ways, 1 / 0.5))
    changed = set(np.flatnonzero(live.drive_multiplier != 1.0).tolist())
    assert changed == expected
    assert len(expected) == 106
    # 60 of the 61 ways are drivable; 11 of them only inside edges merged by simplification,
    # which ``way_id`` (the first way of an edge) alone would miss
    covered = {way for way in ways if holder.edges_of_way(way).size}
    assert len(covered) == 60
    assert len(covered - set(drive.way_id.tolist())) == 11
    assert np.all(live.drive_multiplier[list(changed)] == 2.0)
    assert holder.edges_of_way(123).size == 0  # not a way of this network


def test_raising_multipliers_never_makes_a_car_trip_faster(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    rng = np.random.default_rng(8)
    for _trial in range(12):
        a, b = rng.integers(0, drive.n_nodes, 2)  # street corners, so both ends are on streets
        o = (float(drive.node_lat[a]), float(drive.node_lon[a]))
        d = (float(drive.node_lat[b]), float(drive.node_lon[b]))
        holder = OverlayHolder(drive)
        free, route = car_seconds(poa_base, holder.current, o, d)
        assert np.isfinite(free)
        edges = rng.choice(drive.n_edges, 2000, replace=False)
        factors = 1.0 + rng.exponential(1.0, 2000)
        jammed_live = holder.set_multipliers(
            dict(zip(edges.tolist(), factors.tolist(), strict=True))
        )
        jammed, _ = car_seconds(poa_base, jammed_live, o, d)
        assert jammed >= free - 1e-9
        # and slowing its free-flow route further on top of the jam never helps either
        on_route = holder.set_multipliers(
            {e: 2.0 * float(jammed_live.drive_multiplier[e]) for e in route}
        )
        slowed, _ = car_seconds(poa_base, on_route, o, d)
        assert slowed >= jammed - 1e-9
        assert route  # street corners a few km apart: a real drive


def test_closing_the_chosen_route_forces_another_or_none(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    holder = OverlayHolder(drive)
    request = PlanRequest(CENTRE, EAST, DEPART, modes=frozenset({"car"}))
    (car,) = plan_trip(poa_base, request, holder.current)
    assert car.family == ("car",)
    route = car.legs[0].drive_edges
    assert len(route) > 10
    closed = holder.set_multipliers({e: float("inf") for e in route})
    options = plan_trip(poa_base, request, closed)
    for it in options:
        assert it.family == ("car",)
        assert not set(it.legs[0].drive_edges) & set(route)
        assert it.arrival >= car.arrival
    # and repeatedly: closing each new route eventually leaves no car option at all, or
    # keeps finding routes that avoid everything closed so far
    shut: dict[int, float] = {e: float("inf") for e in route}
    for _ in range(5):
        options = plan_trip(poa_base, request, holder.set_multipliers(shut))
        if not options:
            break
        edges = options[0].legs[0].drive_edges
        assert not set(edges) & set(shut)
        shut.update({e: float("inf") for e in edges})
