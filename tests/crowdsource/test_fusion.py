"""Fusion rules on plain reports (pure), checked against a naive reference on 10k reports,
and contributor weights (store-backed)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from crowdsource_helpers import make_report

from correspondance.store import StateStore
from crowdsource.fusion import (
    LEVEL_MULTIPLIER,
    MAX_WEIGHT,
    NEW_WEIGHT,
    PRIOR_WEIGHT,
    ContributorWeights,
    Verdict,
    fuse,
    fuse_reports,
    updated_weight,
)
from crowdsource.models import Report

NOW = 1_800_000_000.0
EDGE = 100


def _r(who: str, *, net: str | None = None, age: float = 0.0, **kw: object) -> Report:
    """A report by contributor ``who`` from network ``net`` (default: their own)."""
    return make_report(
        contributor=who * 64,
        origin=net or f"net-{who}",
        observed_at=NOW - age,
        **kw,  # type: ignore[arg-type]
    )


def _expected(voices: list[tuple[float, float]], extra: float = 0.0) -> float:
    """exp(Σ w·s / (prior + Σ w)) rounded to 0.1, for (weight, severity) voices."""
    total = sum(w for w, _ in voices)
    return float(
        np.round(math.exp(sum(w * s for w, s in voices) / (PRIOR_WEIGHT + total + extra)), 1)
    )


def test_one_contributor_moves_nothing() -> None:
    assert fuse([_r("a")], {}, NOW) == {}


def test_k_distinct_contributors_from_distinct_networks_move_the_edge() -> None:
    fused = fuse([_r("a"), _r("b")], {}, NOW)
    ln3 = math.log(LEVEL_MULTIPLIER[3])
    assert fused == {EDGE: _expected([(NEW_WEIGHT, ln3)] * 2)}
    assert fused[EDGE] == pytest.approx(1.9)
    assert fuse([_r("a"), _r("b")], {}, NOW, k=3) == {}
    assert fuse([_r("a"), _r("b"), _r("c")], {}, NOW, k=3)[EDGE] == pytest.approx(2.0)


def test_one_contributor_ten_times_does_not_move_it() -> None:
    reports = [_r("a", age=i * 30.0) for i in range(10)]
    assert fuse(reports, {}, NOW) == {}
    # ... nor does it count ten times next to another contributor
    assert fuse([*reports, _r("b")], {}, NOW) == fuse([_r("a"), _r("b")], {}, NOW)


def test_many_tokens_from_one_network_are_one_network() -> None:
    sybils = [_r(chr(ord("A") + i), net="attacker") for i in range(26)]
    assert fuse(sybils, {}, NOW) == {}
    # next to one honest report they weigh one trusted voice at most, not 26 new ones
    honest = _r("h", level=1)
    with_sybils = fuse([*sybils, honest], {}, NOW)[EDGE]
    ln1, ln3 = math.log(LEVEL_MULTIPLIER[1]), math.log(LEVEL_MULTIPLIER[3])
    assert with_sybils == _expected([(MAX_WEIGHT, ln3), (NEW_WEIGHT, ln1)])
    assert with_sybils < 2.0


def test_reports_without_a_network_share_one() -> None:
    a = make_report(contributor="a" * 64, observed_at=NOW)
    b = make_report(contributor="b" * 64, observed_at=NOW)
    assert fuse([a, b], {}, NOW) == {}


def test_clear_reports_pull_back_to_normal() -> None:
    jam = [_r("a"), _r("b")]
    base = fuse(jam, {}, NOW)[EDGE]
    one_clear = fuse([*jam, _r("c", kind="clear")], {}, NOW)[EDGE]
    assert 1.0 < one_clear < base
    assert fuse([*jam, *(_r(w, kind="clear") for w in "cdef")], {}, NOW) == {}
    # a contributor's own later clear replaces their jam report
    assert fuse([*jam, _r("a", kind="clear", age=-1)], {}, NOW) == {}


def test_time_decay_brings_it_back() -> None:
    jam = [_r("a"), _r("b")]
    ages = (0, 900, 1800, 2700, 3600)
    values = [fuse(jam, {}, NOW + dt, window_s=3600).get(EDGE, 1.0) for dt in ages]
    assert values == [1.9, 1.6, 1.4, 1.2, 1.0]
    assert fuse(jam, {}, NOW + 901) == {}  # out of the 15-minute window altogether


def test_reports_from_the_future_or_outside_the_window_do_not_count() -> None:
    assert fuse([_r("a"), _r("b", age=-3600)], {}, NOW) == {}
    assert fuse([_r("a"), _r("b", age=901)], {}, NOW) == {}


def test_levels_kinds_and_closures() -> None:
    def two(**kw: object) -> dict[int, float]:
        return fuse([_r("a", **kw), _r("b", **kw)], {}, NOW)  # type: ignore[arg-type]

    assert two(level=1) == {EDGE: 1.2}
    assert two(level=4)[EDGE] > two(level=3)[EDGE] > two(level=2)[EDGE]
    assert two(kind="incident") == two(level=2)
    assert two(kind="closure") == {EDGE: math.inf}
    # a closure decays into level-4 congestion, then to nothing
    later = fuse([_r("a", kind="closure"), _r("b", kind="closure")], {}, NOW + 1500, window_s=3600)
    assert 1.0 < later[EDGE] < math.inf
    # one closure among jams does not close the street
    assert fuse([_r("a", kind="closure"), _r("b")], {}, NOW)[EDGE] < math.inf


def test_operator_confirmation_and_dismissal() -> None:
    lone = [_r("a")]
    assert fuse(lone, {}, NOW) == {}
    confirmed = fuse(lone, {}, NOW, confirmations={EDGE: None})[EDGE]
    ln3 = math.log(LEVEL_MULTIPLIER[3])
    assert confirmed == _expected([(NEW_WEIGHT, ln3), (1.0, ln3)])
    assert fuse([], {}, NOW, confirmations={EDGE: None}) == {}  # nothing to confirm
    assert fuse([], {}, NOW, confirmations={7: 4}) == {7: 4.0}  # a confirmed level applies
    assert fuse([_r("a"), _r("b")], {}, NOW, dismissals={EDGE}) == {}
    assert fuse([], {}, NOW, confirmations={7: 4}, dismissals={7}) == {}


def test_weights_shape_the_multiplier_and_verdicts() -> None:
    jam = [_r("a"), _r("b")]
    new = fuse(jam, {}, NOW)[EDGE]
    trusted = fuse(jam, {"a" * 64: 1.0, "b" * 64: 1.0}, NOW)[EDGE]
    assert trusted > new
    # weights are bounded: nobody weighs more than 1 or less than 0.1
    assert fuse(jam, {"a" * 64: 50.0, "b" * 64: 50.0}, NOW)[EDGE] == trusted
    result = fuse_reports([*jam, _r("c", kind="clear")], {}, NOW)
    verdicts = {v.contributor[0]: v.agrees for v in result.verdicts}
    assert verdicts == {"a": True, "b": True, "c": False}
    assert result.corroborated == {EDGE}


def test_updated_weight_is_bounded() -> None:
    assert updated_weight(NEW_WEIGHT, 2, 0) == pytest.approx(0.4)
    assert updated_weight(NEW_WEIGHT, 0, 1) == pytest.approx(0.2)
    assert updated_weight(0.95, 10, 0) == 1.0
    assert updated_weight(0.15, 0, 10) == 0.1


@pytest.mark.anyio
async def test_contributor_weights_in_the_store(store: StateStore) -> None:
    weights = ContributorWeights(store, ttl_s=60)
    assert await weights.get("a" * 64) == NEW_WEIGHT
    new = await weights.apply([Verdict("1", "a" * 64, True), Verdict("2", "b" * 64, False)])
    assert new == {"a" * 64: pytest.approx(0.35), "b" * 64: pytest.approx(0.2)}
    fresh = ContributorWeights(store)  # another process reads them from the store
    assert await fresh.get_many(["a" * 64, "b" * 64, "c" * 64]) == {
        "a" * 64: pytest.approx(0.35),
        "b" * 64: pytest.approx(0.2),
        "c" * 64: NEW_WEIGHT,
    }
    ttl = await store.ttl(ContributorWeights.key("a" * 64))
    assert ttl is not None
    assert ttl <= 60
    assert await weights.forget("a" * 64)
    assert await ContributorWeights(store).get("a" * 64) == NEW_WEIGHT


# -- a naive reference of the same rules, to check the vectorised one on 10k reports ------


def _reference(
    reports: Sequence[Report], weights: Mapping[str, float], now: float, k: int = 2
) -> dict[int, float]:
    window, half_life = 900.0, 900.0
    latest: dict[tuple[int, str], Report] = {}
    for r in reports:
        if not (now - window < r.observed_at <= now + 60):
            continue
        for e in r.edge_ids:
            held = latest.get((e, r.contributor))
            if held is None or r.observed_at >= held.observed_at:
                latest[(e, r.contributor)] = r
    per_edge: dict[int, list[Report]] = defaultdict(list)
    for (e, _), r in latest.items():
        per_edge[e].append(r)
    out = {}
    for e, rs in per_edge.items():
        jam = [r for r in rs if r.kind != "clear"]
        closures = [r for r in rs if r.kind == "closure"]
        if len({r.contributor for r in jam}) < k or len({r.origin for r in jam}) < k:
            continue
        voices = []
        for r in rs:
            w = min(1.0, max(0.1, weights.get(r.contributor, NEW_WEIGHT)))
            level = {"congestion": r.level, "incident": 2, "closure": 4}.get(r.kind)
            severity = math.log(LEVEL_MULTIPLIER[level]) if level else 0.0
            voices.append(
                (r.origin, w * 0.5 ** (max(now - r.observed_at, 0) / half_life), severity, r.kind)
            )
        by_net: dict[str | None, float] = defaultdict(float)
        for net, v, _, _ in voices:
            by_net[net] += v
        voices = [(n, v * min(1.0, 1.0 / by_net[n]), s, kd) for n, v, s, kd in voices]
        total = sum(v for _, v, _, _ in voices)
        value = round(math.exp(sum(v * s for _, v, s, _ in voices) / (PRIOR_WEIGHT + total)), 1)
        clear_voice = sum(v for _, v, _, kd in voices if kd == "clear")
        clear = [r for r in rs if r.kind == "clear"]
        if (
            len({r.contributor for r in clear}) >= k
            and len({r.origin for r in clear}) >= k
            and clear_voice > total - clear_voice
        ):
            continue
        closure_voice = sum(v for _, v, _, kd in voices if kd == "closure")
        if (
            len({r.contributor for r in closures}) >= k
            and len({r.origin for r in closures}) >= k
            and closure_voice / (PRIOR_WEIGHT + total) >= 0.5
        ):
            value = math.inf
        if value >= 1.1 - 1e-9:
            out[e] = value
    return out


def test_ten_thousand_reports_match_the_reference() -> None:
    rng = np.random.default_rng(5)
    kinds = ["congestion"] * 6 + ["clear"] * 2 + ["incident", "closure"]
    reports = []
    for i in range(10_000):
        who = int(rng.integers(0, 3000))
        edge = int(rng.integers(0, 600))
        kind = kinds[int(rng.integers(0, len(kinds)))]
        reports.append(
            make_report(
                contributor=f"{who:064x}",
                origin=f"net{who % 1500}",  # two contributors per network
                edges=(edge, edge + 10_000) if i % 3 == 0 else (edge,),
                kind=kind,
                level=int(rng.integers(1, 5)),
                observed_at=NOW - float(rng.uniform(-30, 1000)),
                report_id=f"r{i}",
            )
        )
    weights = {f"{w:064x}": float(rng.uniform(0, 1.2)) for w in range(0, 3000, 7)}
    fused = fuse(reports, weights, NOW)
    expected = _reference(reports, weights, NOW)
    assert len(fused) > 100  # a real workload: many corroborated edges
    assert fused.keys() == expected.keys()
    for edge, value in expected.items():
        assert fused[edge] == pytest.approx(value), edge
