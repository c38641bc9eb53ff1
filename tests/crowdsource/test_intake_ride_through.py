"""Report intake rides through a Redis restart without counting anything twice (issue #11).

Two ways a call can be cut off by a Redis restart, both with a real private redis-server:

* **killed before it ran**: the server is frozen (SIGSTOP) so the call waits in its socket,
  then SIGKILLed and started again on the same folder (AOF, fsync always, as deployed). The
  connection is reset with the command unread; the store makes safe calls again once the
  server answers, within its 2-s ride-through;
* **killed after it ran**: a loopback proxy between the store and Redis passes the command,
  lets Redis run it, then drops the connection instead of passing the answer (Redis dying
  between running a command and answering). Only calls that are safe to repeat may be made
  again: the report intake is (it recognises its own report id, stored by the first run:
  same answer, one report, counted once); ``incr`` and ``publish`` are not, and must raise
  rather than count twice or publish a second event. The Redis driver used to repeat every
  command once after a broken connection: a second ``INCR``, a second event, and an intake
  answered "duplicate" for the report it had just stored, with its rate counters counted
  twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from crowdsource_helpers import CITY, SECRET, make_report
from processes import RedisServer, free_port

from correspondance.store import RedisStateStore, StoreUnavailableError
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.admission import ReportIntake
from crowdsource.repository import ReportRepository

pytestmark = pytest.mark.anyio

ADDRESS = "198.51.100.7"
PREFIX = "ride:"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private persistent redis-server (AOF, fsync always), killed after the test."""
    server = RedisServer(workdir=tmp_path / "redis", persistent=True, port=free_port())
    server.workdir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class DroppingProxy:
    """A loopback TCP proxy to Redis that, once armed, lets the next command through and
    run, then closes the client's connection instead of passing Redis's answer."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.armed = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]

        async def to_redis() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if self.armed:  # Redis ran the command and answered: the answer is lost
                    self.armed = False
                    self.dropped += 1
                    writer.transport.abort()
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        tasks = [asyncio.create_task(to_redis()), asyncio.create_task(to_client())]
        self._tasks.update(tasks)
        try:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stream in (writer, up_writer):
                stream.transport.abort()


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore(url, prefix=PREFIX, socket_timeout_s=3.0, connect_timeout_s=1.0)
    try:
        yield store
    finally:
        await store.aclose()


def _intake(store: RedisStateStore) -> ReportIntake:
    limits = AbuseLimits(token_per_minute=50, address_per_minute=50)
    guard = AbuseGuard(store, limits, secret=SECRET, city=CITY)
    return ReportIntake(guard, ReportRepository(store, CITY))


async def _counted(store: RedisStateStore, intake: ReportIntake, contributor: str) -> list[int]:
    """The contributor's and the address's minute counters."""
    keys = [*intake.guard.token_keys(contributor)[:1], *intake.guard.network_keys(ADDRESS)[:1]]
    return [int(await store.get(k) or b"0") for k in keys]


async def test_an_intake_whose_answer_was_lost_is_stored_and_counted_once(
    redis_server: RedisServer,
) -> None:
    async with DroppingProxy(redis_server.port) as proxy, opened(proxy.url) as store:
        intake = _intake(store)
        contributor = "d" * 64
        now = time.time()
        # warm up: the script is loaded, a connection is open
        assert await intake.admit(
            make_report(contributor, edges=(1,), observed_at=now), ADDRESS, now
        )
        report = make_report(contributor, edges=(2,), observed_at=now + 1)
        proxy.armed = True
        stored = await intake.admit(report, ADDRESS, now)
        assert proxy.dropped == 1  # Redis ran it, the answer never came back
        assert stored is True  # the same answer as without the fault: accepted, not duplicate
        assert store.retried["ConnectionLostError"] == 1
        repository = intake.repository
        ids = await store.smembers(repository.contributor_key(contributor))
        assert report.report_id in ids
        assert len(ids) == 2
        pending = await store.hgetall(
            repository.pending_key(repository.bucket_of(report.received_at))
        )
        assert sum(1 for k in pending if k == report.report_id) == 1
        assert await _counted(store, intake, contributor) == [2, 2]  # two reports, two counts
        # the same report sent again by the client (a new request) is still a duplicate
        again = make_report(contributor, edges=(2,), observed_at=now + 2)
        assert await intake.admit(again, ADDRESS, now) is False


@pytest.mark.parametrize("operation", ["incr", "publish", "delete"])
async def test_a_call_that_may_have_run_is_not_made_again(
    redis_server: RedisServer, operation: str
) -> None:
    async with DroppingProxy(redis_server.port) as proxy, opened(proxy.url) as store:
        await store.set("gone", b"1")
        await store.incr("n")
        await store.publish("t", "oslo", {})  # warm: scripts loaded, a connection open
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "incr": lambda: store.incr("n"),
            "publish": lambda: store.publish("t", "oslo", {}),
            "delete": lambda: store.delete("gone"),
        }
        proxy.armed = True
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await calls[operation]()
        assert proxy.dropped == 1
        assert time.monotonic() - started < 1.0  # raised at once, no ride-through
        assert store.retried["ConnectionLostError"] == 0
        # it ran exactly once
        assert await store.get("n") == (b"2" if operation == "incr" else b"1")
        assert await store.last_event_seq() == (2 if operation == "publish" else 1)
        assert await store.exists("gone") == (0 if operation == "delete" else 1)


async def test_an_idempotent_call_whose_answer_was_lost_is_made_again(
    redis_server: RedisServer,
) -> None:
    async with DroppingProxy(redis_server.port) as proxy, opened(proxy.url) as store:
        await store.set("k", b"old")
        proxy.armed = True
        await store.set("k", b"new", ttl_s=60)
        assert proxy.dropped == 1
        assert store.retried["ConnectionLostError"] == 1
        assert await store.get("k") == b"new"
        proxy.armed = True
        assert await store.get("k") == b"new"
        assert store.retried["ConnectionLostError"] == 2


async def _killed_mid_call(server: RedisServer, down_s: float) -> None:
    """Freeze the server (calls wait in its socket), SIGKILL it, start it again."""
    assert server.process is not None
    server.process.kill()  # while stopped: the queued commands are never read
    server.process.wait(timeout=10)
    server.process = None
    await asyncio.sleep(down_s)
    await asyncio.to_thread(server.start)


async def test_intake_in_flight_when_redis_is_killed_and_restarted_is_stored_once(
    redis_server: RedisServer,
) -> None:
    async with opened(redis_server.url) as store:
        intake = _intake(store)
        contributor = "e" * 64
        now = time.time()
        assert await intake.admit(
            make_report(contributor, edges=(1,), observed_at=now), ADDRESS, now
        )
        report = make_report(contributor, edges=(2,), observed_at=now + 1)
        redis_server.freeze()
        in_flight = asyncio.create_task(intake.admit(report, ADDRESS, now))
        await asyncio.sleep(0.2)
        restarted = asyncio.create_task(_killed_mid_call(redis_server, down_s=0.5))
        assert await asyncio.wait_for(in_flight, 10) is True  # no 503: ridden through
        await restarted
        assert store.retried["ConnectionLostError"] >= 1  # the reset, not only refusals
        repository = intake.repository
        ids = await store.smembers(repository.contributor_key(contributor))
        assert ids >= {report.report_id}
        assert len(ids) == 2
        assert await _counted(store, intake, contributor) == [2, 2]
