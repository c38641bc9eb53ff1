"""McRAPTOR (arrival, rides, walking): hand-made trade-offs, a brute-force oracle over
random small timetables, and Porto Alegre against RAPTOR."""

from __future__ import annotations

import random
from functools import cache

import pytest
from raptor_oracle import Rides, Trips, Vec, Walks, build, poa_day, replay

from routing.base import CityBase
from routing.raptor import (
    LAST_MC_STATS,
    FootLeg,
    Footpaths,
    RideLeg,
    TransitJourney,
    run_mc_raptor,
    run_raptor,
)
from routing.timetable import BaseTimetable, DayTimetable


def _dominates(a: Vec, b: Vec) -> bool:
    return a != b and all(x <= y for x, y in zip(a, b, strict=True))


def _pareto(vectors: set[Vec]) -> set[Vec]:
    return {v for v in vectors if not any(_dominates(u, v) for u in vectors)}


def _vectors(journeys: list[TransitJourney]) -> set[Vec]:
    return {(j.arrival, j.rides, j.walk_s) for j in journeys}


def _earliest_by_rides(vectors: set[Vec], max_rides: int) -> list[int | None]:
    """Earliest arrival with at most k rides, for k = 1..max_rides."""
    return [
        min((a for a, r, _ in vectors if r <= k), default=None) for k in range(1, max_rides + 1)
    ]


def test_earlier_with_more_walking_and_later_with_less() -> None:
    trips = {
        "R1-a": [("A", 100, 100), ("B", 200, 200)],
        "R2-a": [("D", 600, 600), ("C", 700, 700)],  # a 300 s walk B -> D, then early
        "R3-a": [("B", 800, 800), ("C", 1000, 1000)],  # stay at B, later, no walking
    }
    base, day, idx, fp = build(trips, walk=[("B", "D", 300.0)])
    src, dst = {idx["A"]: 0}, {idx["C"]: 0}
    mc = run_mc_raptor(day, base.n_stops, fp, base.min_transfer_s, src, dst)
    assert sorted(_vectors(mc)) == [(700, 2, 300), (1000, 2, 0)]
    walky = next(j for j in mc if j.arrival == 700)
    assert [type(leg) for leg in walky.legs] == [RideLeg, FootLeg, RideLeg]
    assert [type(leg) for leg in next(j for j in mc if j.arrival == 1000).legs] == [RideLeg] * 2
    plain = run_raptor(day, base.n_stops, fp, base.min_transfer_s, src, dst)
    assert [(j.rides, j.arrival) for j in plain] == [(2, 700)]
    assert LAST_MC_STATS[0].overflows == 0


def test_access_and_egress_walking_count() -> None:
    trips = {
        "R1-a": [("A", 300, 300), ("C", 400, 400)],  # far from the origin, fast
        "R2-a": [("B", 100, 100), ("D", 900, 900)],  # next to the origin, slow
    }
    base, day, idx, fp = build(trips)
    a, b, c, d = (idx[s] for s in "ABCD")
    sources = {a: 250, b: 30}
    targets = {c: 200, d: 10}
    src_walk, tgt_walk = {a: 250, b: 30}, {c: 200, d: 10}
    mc = run_mc_raptor(
        day, base.n_stops, fp, base.min_transfer_s, sources, targets, src_walk, tgt_walk
    )
    assert sorted(_vectors(mc)) == [(600, 1, 450), (910, 1, 40)]
    plain = run_raptor(day, base.n_stops, fp, base.min_transfer_s, sources, targets)
    assert [(j.rides, j.arrival) for j in plain] == [(1, 600)]
    for j in mc:
        vec = replay(day, fp, base.min_transfer_s, j, sources, src_walk, targets, tgt_walk)
        assert vec == (j.arrival, j.rides, j.walk_s)


def test_min_transfer_and_forbidden_transfer_rules_hold() -> None:
    trips = {
        "R1-a": [("A", 100, 100), ("B", 200, 200)],
        "R2-a": [("B", 230, 230), ("C", 300, 300)],
        "R2-b": [("B", 400, 400), ("C", 500, 500)],
    }
    base, day, idx, fp = build(trips, transfers=[("B", "B", 2, 60)])
    mc = run_mc_raptor(day, base.n_stops, fp, base.min_transfer_s, {idx["A"]: 0}, {idx["C"]: 0})
    # the B -> B transfer is a 60 s "footpath" too: walking to board 230 is still too late
    assert min(j.arrival for j in mc) == 500
    base, day, idx, fp = build(trips, transfers=[("B", "B", 3, 0)])
    mc = run_mc_raptor(day, base.n_stops, fp, base.min_transfer_s, {idx["A"]: 0}, {idx["C"]: 0})
    assert mc == []


# --- a brute-force oracle over random small timetables ------------------------------------


def _random_case(rng: random.Random) -> tuple[Trips, Walks, list[tuple[str, str, int, int]]]:
    stops = [f"S{i}" for i in range(rng.randint(4, 6))]
    trips: Trips = {}
    for r in range(rng.randint(2, 4)):
        seq = rng.sample(stops, rng.randint(2, min(4, len(stops))))
        hops = [rng.randint(60, 600) for _ in seq[1:]]
        for t in range(rng.randint(1, 3)):
            clock = rng.randint(0, 2400)
            rows = []
            for i, s in enumerate(seq):
                if i:
                    clock += hops[i - 1] + rng.choice((0, 0, 120))  # trips may overtake
                dwell = rng.choice((0, 0, 30))
                rows.append((s, clock, clock + dwell))
                clock += dwell
            trips[f"R{r}-{t}"] = rows
    stops = sorted({s for rows in trips.values() for s, _, _ in rows})  # served ones only
    walk = [
        (a, b, float(rng.randint(20, 500)))
        for a, b in {tuple(rng.sample(stops, 2)) for _ in range(rng.randint(0, 6))}
    ]
    transfers: list[tuple[str, str, int, int]] = []
    for s in rng.sample(stops, rng.randint(0, 2)):
        if rng.random() < 0.3:
            transfers.append((s, s, 3, 0))
        else:
            transfers.append((s, s, 2, rng.randint(0, 180)))
    return trips, walk, transfers


def _oracle(
    base: BaseTimetable,
    day: DayTimetable,
    fp: Footpaths,
    sources: dict[int, int],
    src_walk: dict[int, int],
    targets: dict[int, int],
    tgt_walk: dict[int, int],
    max_rides: int,
) -> set[Vec]:
    """Every journey, enumerated: any trip at or after the ready time, any alighting stop.

    ``from_stop(s, ready, rides_left)`` is the Pareto set of (arrival, rides, walk added)
    over every continuation that boards at s no earlier than ``ready``; it is memoised on
    its arguments only (walking adds), so this is still exhaustive.
    """
    rides = Rides(day)
    mtt = base.min_transfer_s

    @cache
    def from_stop(s: int, ready: int, rides_left: int) -> frozenset[Vec]:
        out: set[Vec] = set()
        if rides_left == 0:
            return frozenset()
        for _dep, a, b in rides.from_stop(s, ready):
            if b in targets:
                out.add((a + targets[b], 1, tgt_walk.get(b, 0)))
            if mtt[b] >= 0:
                for arr_, r, w in from_stop(b, a + int(mtt[b]), rides_left - 1):
                    out.add((arr_, r + 1, w))
            for e in range(int(fp.offset[b]), int(fp.offset[b + 1])):
                d = int(fp.duration[e])
                if d >= 0:
                    u = int(fp.to[e])
                    for arr_, r, w in from_stop(u, a + d, rides_left - 1):
                        out.add((arr_, r + 1, w + d))
        return frozenset(_pareto(out))

    found: set[Vec] = set()
    for s, t0 in sources.items():
        for a, r, w in from_stop(s, t0, max_rides):
            found.add((a, r, w + src_walk.get(s, 0)))
    return _pareto(found)


def test_pareto_set_matches_brute_force_on_random_timetables() -> None:
    rng = random.Random(20121112)
    checked = nonempty = 0
    for _ in range(300):
        trips, walk, transfers = _random_case(rng)
        base, day, _, fp = build(trips, walk, transfers)
        n = base.n_stops
        sources = {s: rng.randint(0, 900) for s in rng.sample(range(n), rng.randint(1, 2))}
        src_walk = {s: rng.randint(0, 300) for s in sources}
        targets = {s: rng.randint(0, 200) for s in rng.sample(range(n), rng.randint(1, 2))}
        tgt_walk = dict(targets)  # egress is walking
        max_rides = rng.randint(1, 3)
        mtt = base.min_transfer_s
        expected = _oracle(base, day, fp, sources, src_walk, targets, tgt_walk, max_rides)
        mc = run_mc_raptor(
            day, n, fp, mtt, sources, targets, src_walk, tgt_walk, max_rides=max_rides
        )
        assert LAST_MC_STATS[0].overflows == 0
        assert _vectors(mc) == expected, (trips, walk, transfers, sources, targets)
        assert len(mc) == len(expected)
        for j in mc:
            assert replay(day, fp, mtt, j, sources, src_walk, targets, tgt_walk) == (
                j.arrival,
                j.rides,
                j.walk_s,
            )
        plain = run_raptor(day, n, fp, mtt, sources, targets, max_rides=max_rides)
        got = _earliest_by_rides(_vectors(mc), max_rides)
        want = _earliest_by_rides({(j.arrival, j.rides, 0) for j in plain}, max_rides)
        assert got == want
        checked += 1
        nonempty += bool(expected)
    assert checked >= 100
    assert nonempty >= 150


@pytest.mark.slow
def test_porto_alegre_earliest_arrival_per_rides_matches_raptor(poa_base: CityBase) -> None:
    tt, day, fp, served, rng = poa_day(poa_base, 20190516)

    def around(stop: int) -> dict[int, int]:
        """The stop itself and its footpath neighbours, with the walk to them."""
        out = {stop: 0}
        for e in range(int(fp.offset[stop]), int(fp.offset[stop + 1])):
            if fp.duration[e] >= 0:
                out.setdefault(int(fp.to[e]), int(fp.duration[e]))
        return out

    checked = 0
    for _ in range(30):
        src, dst = (int(x) for x in rng.sample(list(served), 2))
        t0 = 7 * 3600 + rng.randrange(0, 10 * 3600)
        walk_in, walk_out = around(src), around(dst)
        sources = {s: t0 + w for s, w in walk_in.items()}
        targets = dict(walk_out)
        plain = run_raptor(day, tt.n_stops, fp, tt.min_transfer_s, sources, targets, max_rides=6)
        mc = run_mc_raptor(
            day, tt.n_stops, fp, tt.min_transfer_s, sources, targets, walk_in, walk_out, 6
        )
        got = _earliest_by_rides(_vectors(mc), 6)
        want = _earliest_by_rides({(j.arrival, j.rides, 0) for j in plain}, 6)
        assert got == want, (src, dst, t0)
        vecs = [(j.arrival, j.rides, j.walk_s) for j in mc]
        assert len(set(vecs)) == len(vecs)
        assert not any(_dominates(u, v) for u in vecs for v in vecs)
        for j in mc:
            assert replay(day, fp, tt.min_transfer_s, j, sources, walk_in, targets, walk_out) == (
                j.arrival,
                j.rides,
                j.walk_s,
            )
        checked += bool(mc)
    assert checked >= 20
