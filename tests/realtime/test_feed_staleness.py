"""Feed status is judged when read (issue 11, finding 7): a feed nobody polls any more turns
stale on its own, and a replayed recording is labelled ``replay``, never ``ok``."""

from __future__ import annotations

import time

import pytest

from correspondance.store import MemoryStateStore
from realtime.health import FeedHealth, HealthBook, assess, read_health, silence_limit_s

pytestmark = pytest.mark.anyio
CITY = "oslo"
RECORDED_DAY = 1666605600.0  # 2022-10-24 10:00 UTC, inside the bundled Oslo Bysykkel day


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_feed_nobody_polls_turns_stale_after_three_ttls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with MemoryStateStore() as store:
        book = HealthBook(store, CITY)
        book.register(FeedHealth(feed_id="bikes", kind="gbfs", source="http://x"))
        now = time.time()
        await book.success("bikes", records=3, rejected=0, last_updated=now, ttl_s=30.0)
        (fresh,) = await read_health(store, CITY)
        assert fresh["status"] == "ok"
        assert fresh["silent_s"] < 5
        # the poller died: nothing updates the record; 91 s later (> 3 × 30 s) it is stale
        monkeypatch.setattr("realtime.health.time.time", lambda: now + 91.0)
        (stale,) = await read_health(store, CITY)
        assert stale["status"] == "stale"
        assert stale["reason"].startswith(
            "no poll recorded for 91 s (expected at least every 90 s)"
        )
        assert stale["staleness_s"] == pytest.approx(91.0, abs=1.0)


async def test_the_silence_limit_is_three_ttls_but_at_least_a_minute() -> None:
    assert silence_limit_s(None) == 60.0
    assert silence_limit_s(0.0) == 60.0
    assert silence_limit_s(10.0) == 60.0
    assert silence_limit_s(300.0) == 900.0


async def test_a_degraded_feed_keeps_its_reason_when_silent() -> None:
    record = {"feed_id": "rt", "status": "degraded", "reason": "HTTP 500", "recorded_at": 0.0}
    assert assess(record, now=10_000.0)["status"] == "degraded"
    assert assess(record, now=10_000.0)["reason"] == "HTTP 500"


async def test_a_replay_is_labelled_with_its_recorded_date_never_ok() -> None:
    async with MemoryStateStore() as store:
        book = HealthBook(store, CITY)
        book.register(
            FeedHealth(feed_id="oslobysykkel", kind="gbfs", source="http://x", replay=True)
        )
        # the replay poller runs on the recording's virtual clock
        await book.success(
            "oslobysykkel",
            records=250,
            rejected=0,
            last_updated=RECORDED_DAY,
            ttl_s=10.0,
            now=RECORDED_DAY + 5,
        )
        (record,) = await read_health(store, CITY)
        assert record["status"] == "replay"
        assert record["data_date"] == "2022-10-24"
        assert record["reason"] == "replay of data recorded on 2022-10-24, not live data"
        assert record["staleness_s"] > 3 * 365 * 86_400  # honest: the data is years old
        # a replay whose poller stopped is stale like any other feed
        silent = assess(record, now=time.time() + 120)
        assert silent["status"] == "stale"
