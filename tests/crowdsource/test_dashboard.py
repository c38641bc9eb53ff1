"""What operators and commuters see (``crowdsource.dashboard``) and the audit log
(``crowdsource.audit``): levels, k-thresholds, per-minute samples and their claims, audit
entries and their pruning, on both store backends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from correspondance.store import StateStore
from crowdsource.audit import AuditLog, audit_key
from crowdsource.dashboard import (
    DashboardMetrics,
    DashboardSample,
    bearing_deg,
    k_threshold,
    level_of,
    metrics_key,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("multiplier", "level"),
    [(1.0, 1), (1.3, 1), (1.79, 1), (1.8, 2), (2.49, 2), (2.5, 3), (3.99, 3), (4.0, 4), (9.0, 4)],
)
async def test_a_multiplier_reads_as_the_highest_level_it_reaches(
    multiplier: float, level: int
) -> None:
    assert level_of(multiplier) == level


async def test_a_closure_has_no_level() -> None:
    assert level_of(math.inf) is None


@pytest.mark.parametrize(
    ("count", "k", "shown"),
    [(0, 2, 0), (1, 2, None), (2, 2, 2), (2, 3, None), (3, 3, 3), (None, 2, None)],
)
async def test_counts_below_k_are_withheld(count: int | None, k: int, shown: int | None) -> None:
    assert k_threshold(count, k) == shown


@pytest.mark.parametrize(
    ("coords", "bearing"),
    [
        ([[0.0, 0.0], [0.0, 0.01]], 0.0),
        ([[0.0, 0.0], [0.01, 0.0]], 90.0),
        ([[0.0, 0.01], [0.0, 0.0]], 180.0),
        ([[0.01, 0.0], [0.0, 0.0]], 270.0),
    ],
)
async def test_bearings_are_compass_degrees(coords: list[list[float]], bearing: float) -> None:
    assert bearing_deg(np.array(coords)) == pytest.approx(bearing, abs=0.1)


def sample(t: int, made: int = 0) -> DashboardSample:
    return DashboardSample(t, 3, 0.5, 1.2, 4, made, 0, {"140": 1.8})


async def test_one_process_takes_each_minute(store: StateStore) -> None:
    metrics = DashboardMetrics(store, "porto-alegre")
    other = DashboardMetrics(store, "porto-alegre")  # another API process
    assert await metrics.claim(1_000_020.0) == 1_000_020 // 60 * 60
    assert await other.claim(1_000_050.0) is None  # same minute
    assert await other.claim(1_000_080.0) == 1_000_080 // 60 * 60  # the next one


async def test_samples_are_kept_for_the_window_only(store: StateStore) -> None:
    metrics = DashboardMetrics(store, "porto-alegre", keep_s=3600)
    start = 1_800_000_000
    for minute in range(0, 90, 15):
        await metrics.record(sample(start + minute * 60, made=minute))
    kept = await metrics.samples(0)
    # recorded over 75 minutes with a one-hour window: the first ones are gone
    assert [s.t for s in kept] == [start + m * 60 for m in (15, 30, 45, 60, 75)]
    assert kept[-1] == sample(start + 75 * 60, made=75)
    assert [s.t for s in await metrics.samples(start + 50 * 60)] == [
        start + 60 * 60,
        start + 75 * 60,
    ]
    ttl = await store.ttl(metrics_key("porto-alegre"))
    assert ttl is not None
    assert 0 < ttl <= 3600


async def test_the_audit_log_is_newest_first_and_forgets_old_entries(store: StateStore) -> None:
    log = AuditLog(store, "porto-alegre", keep_s=600)
    now = 1_800_000_000.0
    await log.append("ana", "incident.declared", "incident:a", {"kind": "closure"}, now=now)
    await log.append("bruno", "edge.confirmed", "edge:7", {"level": 3}, now=now + 60)
    await log.append("ana", "incident.ended", "incident:a", {}, now=now + 120)
    entries = await log.entries()
    assert [(e.operator, e.action, e.target) for e in entries] == [
        ("ana", "incident.ended", "incident:a"),
        ("bruno", "edge.confirmed", "edge:7"),
        ("ana", "incident.declared", "incident:a"),
    ]
    assert entries[1].details == {"level": 3}
    assert entries[2].at == "2027-01-15T08:00:00+00:00"
    assert [e.action for e in await log.entries(limit=1)] == ["incident.ended"]
    # at now + 700 s only what is younger than keep_s (600 s) stays: from now + 100 s on
    await log.append("bruno", "edge.dismissed", "edge:7", {}, now=now + 700)
    assert [e.action for e in await log.entries()] == ["edge.dismissed", "incident.ended"]
    ttl = await store.ttl(audit_key("porto-alegre"))
    assert ttl is not None
    assert 0 < ttl <= 600
