"""Abuse rules, each a test: per-token and per-network limits, the per-area cap,
implausible sequences; counters are hashed and expire with their window."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from crowdsource_helpers import CITY, SECRET, make_report

from correspondance.geo import distance_m
from correspondance.store import StateStore
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.errors import RateLimitedError, ReportRejectedError

pytestmark = pytest.mark.anyio

ADDRESS = "198.51.100.23"


def _guard(store: StateStore, **limits: float) -> AbuseGuard:
    return AbuseGuard(store, replace(AbuseLimits(), **limits), secret=SECRET, city=CITY)


async def test_per_token_limit_with_retry_after(store: StateStore) -> None:
    guard = _guard(store, token_per_minute=3)
    now = time.time()
    for _ in range(3):
        await guard.check("a" * 64, ADDRESS, make_report(), now)
    with pytest.raises(RateLimitedError, match="from this token") as caught:
        await guard.check("a" * 64, ADDRESS, make_report(), now)
    assert 1 <= caught.value.retry_after_s <= 60
    await guard.check("b" * 64, ADDRESS, make_report(), now)  # another token is fine


async def test_per_network_limit_counts_every_token(store: StateStore) -> None:
    guard = _guard(store, address_per_minute=5)
    now = time.time()
    for i in range(5):
        await guard.check(f"{i:064d}", ADDRESS, make_report(), now)
    with pytest.raises(RateLimitedError, match="from this network"):
        await guard.check("f" * 64, ADDRESS, make_report(), now)
    await guard.check("f" * 64, "198.51.100.24", make_report(), now)
    # the counters are keyed by a hash of the network, and expire within their window
    keys = await store.scan_keys("cs:addr:*")
    assert keys
    assert not any("198.51" in k for k in keys)
    for key in keys:
        ttl = await store.ttl(key)
        assert ttl is not None
        assert ttl <= 3600


async def test_ipv6_subscribers_cannot_spread_over_their_64(store: StateStore) -> None:
    guard = _guard(store, address_per_minute=2)
    now = time.time()
    await guard.check("1" * 64, "2001:db8:5:6::1", make_report(), now)
    await guard.check("2" * 64, "2001:db8:5:6::2", make_report(), now)
    with pytest.raises(RateLimitedError):
        await guard.check("3" * 64, "2001:db8:5:6:ffff::3", make_report(), now)


async def test_cap_per_token_per_area(store: StateStore) -> None:
    guard = _guard(store, token_per_area=2)
    now = time.time()
    for _ in range(2):
        await guard.check("a" * 64, ADDRESS, make_report(), now)
    with pytest.raises(RateLimitedError, match="in this area") as caught:
        await guard.check("a" * 64, ADDRESS, make_report(), now)
    assert caught.value.retry_after_s <= 600
    # two km away (reached in two minutes) is another cell
    await guard.check("a" * 64, ADDRESS, make_report(lat=-30.0457, observed_at=now + 120), now)


async def test_implausible_sequences_are_refused(store: StateStore) -> None:
    guard = _guard(store)
    now = time.time()
    await guard.check("a" * 64, ADDRESS, make_report(lat=-30.03, lon=-51.22, observed_at=now), now)
    far = make_report(lat=-30.10, lon=-51.15, observed_at=now + 30)  # ~10 km in 30 s
    assert distance_m(-30.03, -51.22, -30.10, -51.15) > 9_000
    with pytest.raises(ReportRejectedError, match="implausible sequence") as caught:
        await guard.check("a" * 64, ADDRESS, far, now)
    assert caught.value.code == "implausible_sequence"
    # the same place ten minutes later is plausible (50 m/s × 600 s = 30 km)
    later = make_report(lat=-30.10, lon=-51.15, observed_at=now + 600)
    await guard.check("a" * 64, ADDRESS, later, now)
    # another token is unaffected
    await guard.check("b" * 64, ADDRESS, far, now)


async def test_forget_removes_the_contributors_abuse_records(store: StateStore) -> None:
    guard = _guard(store)
    await guard.check("a" * 64, ADDRESS, make_report(), time.time())
    assert any("a" * 64 in k for k in await store.scan_keys("*"))
    assert await guard.forget("a" * 64) == 4
    assert not any("a" * 64 in k for k in await store.scan_keys("*"))
