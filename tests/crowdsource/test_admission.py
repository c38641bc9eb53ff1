"""ReportIntake.admit: the abuse rules and the storing in one atomic store call.

The reference is what the API did before, ``AbuseGuard.check`` then
``ReportRepository.add``, on an in-process store: ``admit`` must give the same answers and
leave the same keys, values and expiries, on both backends (on Redis: the Lua script).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from typing import Any

import pytest
from crowdsource_helpers import CITY, SECRET, make_report

from correspondance.store import MemoryStateStore, StateStore, StoreTypeError
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.admission import ReportIntake
from crowdsource.errors import RateLimitedError, ReportRejectedError
from crowdsource.models import Report
from crowdsource.repository import ReportRepository

pytestmark = pytest.mark.anyio

ADDRESS = "198.51.100.23"
LIMITS = AbuseLimits(token_per_minute=4, address_per_minute=9, token_per_area=3)


def _intake(store: StateStore, limits: AbuseLimits = LIMITS) -> ReportIntake:
    guard = AbuseGuard(store, limits, secret=SECRET, city=CITY)
    return ReportIntake(guard, ReportRepository(store, CITY))


def _scenario(now: float) -> list[tuple[str, str, Report]]:
    """Every rule in turn: stored, duplicate, implausible, token, area and network limits."""
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    steps = [
        (a, ADDRESS, make_report(a, observed_at=now)),
        (a, ADDRESS, make_report(a, observed_at=now + 1)),  # duplicate (same edges, level)
        (a, ADDRESS, make_report(a, edges=(7,), level=2, observed_at=now + 2)),
        (a, ADDRESS, make_report(a, lat=-30.10, lon=-51.15, observed_at=now + 3)),  # 10 km
        (a, ADDRESS, make_report(a, edges=(8,), observed_at=now + 4)),  # area cap (3)
        (a, ADDRESS, make_report(a, edges=(9,), observed_at=now + 5)),  # token/min (4)
        (b, ADDRESS, make_report(b, kind="closure", observed_at=now)),
        (b, "2001:db8::1", make_report(b, kind="clear", observed_at=now + 90)),
    ]
    steps += [(f"{i:064d}", ADDRESS, make_report(f"{i:064d}", observed_at=now)) for i in range(4)]
    steps.append((c, ADDRESS, make_report(c, observed_at=now)))  # network/min (9)
    return steps


def _outcome(result: bool | Exception) -> tuple[Any, ...]:
    if isinstance(result, RateLimitedError):
        return ("limited", result.message, result.retry_after_s)
    if isinstance(result, ReportRejectedError):
        return ("rejected", result.code, result.message)
    return ("stored" if result else "duplicate",)


async def _dump(store: StateStore) -> dict[str, tuple[Any, float | None]]:
    """Every key with its value (whatever its kind) and its TTL, to the second."""
    out: dict[str, tuple[Any, float | None]] = {}
    for key in await store.scan_keys("cs:*"):
        value: Any
        try:
            value = await store.get(key)
        except StoreTypeError:
            try:
                value = await store.hgetall(key)
            except StoreTypeError:
                value = await store.smembers(key)
        ttl = await store.ttl(key)
        out[key] = (value, None if ttl is None else round(ttl))
    return out


async def test_admit_answers_and_stores_exactly_as_check_then_add(store: StateStore) -> None:
    now = time.time()
    steps = _scenario(now)
    reference = MemoryStateStore()
    ref_intake = _intake(reference)
    expected, got = [], []
    for contributor, address, report in steps:
        try:
            await ref_intake.guard.check(contributor, address, report, now)
            expected.append(_outcome(await ref_intake.repository.add(report)))
        except (RateLimitedError, ReportRejectedError) as exc:
            expected.append(_outcome(exc))
        try:
            got.append(_outcome(await _intake(store).admit(report, address, now)))
        except (RateLimitedError, ReportRejectedError) as exc:
            got.append(_outcome(exc))
    assert [o[0] for o in expected] == [
        "stored", "duplicate", "stored", "rejected", "limited", "limited",
        "stored", "stored", "stored", "stored", "limited", "limited", "limited",
    ]  # fmt: skip
    assert got == expected
    mine, theirs = await _dump(store), await _dump(reference)
    assert mine.keys() == theirs.keys()
    for key, (value, ttl) in theirs.items():
        assert mine[key][0] == value, key
        assert ttl is not None, key  # everything expires
        assert mine[key][1] is not None
        assert abs(mine[key][1] - ttl) <= 1, key
    await reference.aclose()


async def test_refusals_name_the_rule_and_when_to_retry(store: StateStore) -> None:
    intake = _intake(store, replace(LIMITS, address_per_minute=1))
    now = time.time()
    assert await intake.admit(make_report("a" * 64), ADDRESS, now)
    with pytest.raises(RateLimitedError, match="from this network") as caught:
        await intake.admit(make_report("b" * 64), ADDRESS, now)
    assert 1 <= caught.value.retry_after_s <= 60
    # the refused token was never counted: the network stopped it first
    assert await store.scan_keys("cs:tok:*:" + "b" * 64) == []


async def test_concurrent_copies_of_one_report_are_stored_once(store: StateStore) -> None:
    intake = _intake(store, AbuseLimits(token_per_minute=100, token_per_area=100))
    now = time.time()
    copies = [
        replace(make_report("a" * 64, observed_at=now), report_id=f"{i:032x}") for i in range(8)
    ]
    outcomes = await asyncio.gather(*(intake.admit(r, ADDRESS, now) for r in copies))
    assert sorted(outcomes) == [False] * 7 + [True]
    assert len(await store.scan_keys(f"cs:{CITY}:report:*")) == 1


async def test_no_raw_address_or_token_reaches_the_store(store: StateStore) -> None:
    intake = _intake(store)
    await intake.admit(make_report("a" * 64), "2001:db8:5:6::1", time.time())
    for key, (value, _) in (await _dump(store)).items():
        assert "2001:db8" not in key
        assert "2001:db8" not in repr(value)


async def test_a_report_of_another_city_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="given to the porto-alegre intake"):
        await _intake(store).admit(make_report(city="oslo"), ADDRESS, time.time())
    assert await store.scan_keys("cs:*") == []


async def test_guard_and_repository_must_share_store_and_city(store: StateStore) -> None:
    guard = AbuseGuard(store, LIMITS, secret=SECRET, city=CITY)
    with pytest.raises(ValueError, match="share"):
        ReportIntake(guard, ReportRepository(store, "oslo"))
    with pytest.raises(ValueError, match="share"):
        ReportIntake(guard, ReportRepository(MemoryStateStore(), CITY))


def test_retry_after_is_whole_seconds_up() -> None:
    guard = AbuseGuard(MemoryStateStore(), LIMITS, secret=SECRET, city=CITY)
    assert guard.limited(3, 0.2).retry_after_s == 1
    assert guard.limited(5, None).retry_after_s == math.ceil(LIMITS.area_window_s)
    assert "in this area" in guard.limited(5, 1.0).message
