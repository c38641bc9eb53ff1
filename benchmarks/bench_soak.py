"""Soak test (issue #11): the deployed topology under mixed load, a writer kill, a Redis restart.

Topology, as docker-compose.yml deploys it but as real processes on loopback
(``tests/processes.py``): a private persistent ``redis-server`` (AOF, ``appendfsync always``)
on a free port, two ``correspondance worker`` processes (one holds the city's writer lock,
the other stands by; both run trip-engine partitions), and ``correspondance serve
--workers 2`` of role ``api``. The writer lock's TTL is short (``--writer-ttl``, 5 s) so the
takeover happens within the run.

Load, every loop bounded in count and time:

* **plans**: ``GET /api/v1/plan`` between random points near the centre of Porto Alegre (inside
  its bbox), at the city's default date around 13:00, with a mix of modes;
* **reports**: ``POST /api/v1/reports`` from ``--contributors`` contributors, each with its own
  ``X-Contributor-Token`` and its own loopback address (127.x.y.z, bound by the client), on the
  drive legs of the trips' itineraries (so fusion moves multipliers and the trip engine gets
  work). Every 202's ``report_id`` and token are kept;
* **trips**: ``--sockets`` trips started with ``POST /api/v1/trips`` (car-share itineraries
  from ``/plan``), each followed by one websocket held by ``--client-processes`` client
  processes (the raw websocket client of :mod:`benchmarks.bench_trips`). A socket that drops
  reconnects with ``after_seq`` (its highest ``seq``), counts messages, ``seq`` gaps and
  duplicates; a socket silent for 40 s is closed and reconnected (a dead server loop).
  More trips are started (and exported) during the run.

Faults: at 1/6 of the load phase the worker holding ``<prefix>lock:writer:porto-alegre`` is
SIGKILLed and a new worker started; at 1/3 ``redis-server`` is SIGKILLed and restarted on
the same port and folder after ``--redis-down-s``.

Measured (printed as a table, and written as JSON to ``--out``): requests by route and status
class, every 5xx by route, status and error code (a 503 ``store_unavailable`` during the Redis
restart is shown on its own line, and still counted), transport errors; acknowledged reports
lost (after the run, every acknowledged ``report_id`` must be in its contributor's export,
``GET /api/v1/me/reports``); sessions lost (every started trip must still answer
``GET /api/v1/trips/{id}`` with its token); websocket reconnects and messages; the writer's
takeover time; RSS of every server process every 10 s, and its growth and slope over the
steady period: from 30 s after the faults are over (Redis answering, the replacement worker
running) to the end, so that a standby becoming the writer is a change of role, not growth.
Transport errors are recorded with whether the connection was new or a reused keep-alive
one, and their exception chain.

Done when: zero 5xx (but see the Redis-restart line), zero transport errors, zero
acknowledged reports lost, zero sessions lost, and RSS growth ≤ 5 % over the steady period
for every server process (redis-server aside) alive at the end and measured for ≥ 60 s.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_soak --minutes 8 --sockets 2000 --out soak.json

``--minutes`` is the load phase; the whole run (start-up, load, checks) is bounded at
10 minutes, and the load phase is shortened if start-up was slow. Before it, the city's base
is loaded (built if needed, as ``correspondance build`` would) into a private cache in
``--workdir``, which the processes then use. Exits 1 if a target is
missed. Logs and Redis's folder stay in ``--workdir`` (a fresh temporary folder by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parents[1]
MEMTRACE = REPO / "benchmarks" / "memtrace"  # sitecustomize of --trace-memory
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_trips import _Fleet, _Watcher, rss_kib  # noqa: E402
from correspondance.settings import Settings  # noqa: E402
from realtime.trips.sessions import active_key  # noqa: E402
from tests.processes import Process, RedisServer, redis_server, serve, worker  # noqa: E402

CITY = "porto-alegre"
HARD_BOUND_S = 600.0  # the whole command
CHECK_RESERVE_S = 80.0  # kept for the checks after the load phase and the shutdown
RSS_EVERY_S = 10.0
GROWTH_TARGET_PCT = 5.0
START_TIMEOUT_S = (
    420.0  # a process loads the city and warms its kernels up first (slow on a busy box)
)
OUTAGE_GRACE_S = 10.0  # after Redis answers again, still "during the restart"
# Faults, as fractions of the load phase; memory is measured from SETTLE_S after the last
# fault is over (Redis answering again, the replacement worker running), so a process taking
# a new role (the standby becoming the writer) is not counted as growth, and the steady
# period that follows is long (more than half of the load phase).
WRITER_KILL_AT = 1 / 6
REDIS_RESTART_AT = 1 / 3
SETTLE_S = 30.0
MIN_STEADY_S = 60.0  # a process measured over less than this is shown, not judged
CHURN_LIVE_S = 60.0  # a trip started during the load is deleted this long after (about)
# uvicorn closes a keep-alive connection idle for 5 s (its ``timeout_keep_alive``), and
# httpx keeps an idle connection for 5 s too (``keepalive_expiry``): a request sent on a
# connection at the very moment the server closes it meets a reset (``ReadError``, and
# nothing in the server's log). Reproduced alone: ``benchmarks/keepalive_race.py``. The
# soak's clients therefore keep idle connections for well under the server's timeout, as a
# reverse proxy in front of uvicorn must.
CLIENT_KEEPALIVE_S = 2.0
# demo query that has car-share options (tests/api/trip_helpers.py)
DEMO_FROM, DEMO_TO = "-30.0346,-51.2177", "-30.003,-51.2"
# simulated feeds frozen at the moment the test suite uses (tests/conftest.py): car-share cars
# near the centre, reproducible plans whatever the time of day
SIMULATED_FEEDS_AT = 1795445400.0
TOKEN_HEADER = "X-Contributor-Token"
PLAN_MODES = ("walk,transit", "walk,transit,carshare", "walk,transit,bikeshare", "car")
# websocket clients
CONNECT_BATCH = 200
SILENT_S = 40.0  # progress every 5 s, heartbeats every 15 s: 40 s of silence is a dead socket
HANDSHAKE_S = 20.0
MAX_ATTEMPTS = 200  # connection attempts per socket
MAX_BACKOFF_S = 8.0


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- HTTP accounting ------------------------------------------------------------------------


@dataclass
class Tally:
    """Every request's outcome, by route."""

    t0: float
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)  # 5xx and transport errors
    outages: list[tuple[float, float]] = field(default_factory=list)  # Redis down windows
    latency: dict[str, list[float]] = field(default_factory=dict)

    def in_outage(self, start: float, end: float) -> bool:
        """Whether a request in flight from ``start`` to ``end`` overlapped a restart."""
        return any(start <= b + OUTAGE_GRACE_S and a <= end for a, b in self.outages)

    async def call(
        self, http: httpx.AsyncClient, route: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request; its status (or transport error) counted under ``route``.

        A transport error is recorded with what the connection pool did (a new connection
        or a reused keep-alive one) and the last step reached, from httpcore's trace."""
        started = time.monotonic()
        steps: list[str] = []

        async def trace(name: str, _info: dict[str, Any]) -> None:
            steps.append(name)

        try:
            response = await http.request(method, url, extensions={"trace": trace}, **kwargs)
        except httpx.HTTPError as exc:
            self.errors.append(
                {
                    "t": round(started - self.t0, 1),
                    "took_s": round(time.monotonic() - started, 2),
                    "route": route,
                    "status": None,
                    "code": f"transport: {type(exc).__name__}",
                    "connection": "new"
                    if any(s.startswith("connection.connect_tcp") for s in steps)
                    else "reused keep-alive",
                    "last_step": steps[-1] if steps else None,
                    "detail": _chain(exc),
                }
            )
            self.statuses[(route, 0)] += 1
            return None
        self.statuses[(route, response.status_code)] += 1
        self.latency.setdefault(route, []).append(time.monotonic() - started)
        if response.status_code >= 500:
            try:
                code = str(response.json()["error"]["code"])
                message = str(response.json()["error"]["message"])[:300]
            except (ValueError, KeyError, TypeError):
                code = response.text[:80] or "(empty body)"
                message = ""
            self.errors.append(
                {
                    "t": round(started - self.t0, 1),
                    "took_s": round(time.monotonic() - started, 2),
                    "route": route,
                    "status": response.status_code,
                    "code": code,
                    "message": message,
                }
            )
        return response

    def classify(self) -> None:
        """Mark each 5xx as during a Redis restart or not (after the windows are known)."""
        for e in self.errors:
            start = e["t"] + self.t0
            e["during_redis_restart"] = self.in_outage(start, start + e["took_s"])


def _chain(exc: BaseException) -> str:
    """An exception and its causes, one ``Type: text`` each."""
    out, seen = [], exc
    for _ in range(4):
        out.append(f"{type(seen).__name__}: {seen}")
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return " <- ".join(out)[:300]


# -- topology -------------------------------------------------------------------------------


@dataclass
class Topology:
    """Redis, the workers and the API server, all children of this process."""

    folder: Path
    stack: ExitStack
    redis: RedisServer
    settings: Settings
    workers: list[Process]
    api: Process
    worker_logs: int = 0
    spawned: set[int] = field(default_factory=set)  # the API supervisor's children

    @property
    def prefix(self) -> str:
        return self.settings.redis_prefix

    def add_worker(self, timeout_s: float = START_TIMEOUT_S) -> Process:
        """A new ``correspondance worker`` (returns once it runs; stopped if it does not run
        within ``timeout_s``)."""
        self.worker_logs += 1
        child = self.stack.enter_context(
            worker(
                self.settings,
                self.folder / f"worker-{self.worker_logs}.log",
                timeout_s=timeout_s,
            )
        )
        self.workers.append(child)
        return child


def start_topology(stack: ExitStack, folder: Path, args: argparse.Namespace) -> Topology:
    redis = stack.enter_context(redis_server(folder / "redis", persistent=True))
    spawned: set[int] = set()
    stack.callback(reap, spawned)  # after every Correspondance process is stopped
    values: dict[str, Any] = {
        "cache_dir": folder / "cache",
        "live_feeds": True,
        "redis_url": redis.url,
        "redis_prefix": "soak:",
        "operators_file": folder / "operators.json",
        "secret_file": folder / "secret",
        "contributor_secret": "soak-test-secret-0123456789abcdef",
        "writer_lock_ttl_s": args.writer_ttl,
        "simulated_feeds_at": SIMULATED_FEEDS_AT,
        # every contributor reports all over the centre, faster than a car could drive
        # between the spots: lift the per-area cap and the implausible-jump check only
        "report_limits": {"token_per_area": 10_000, "max_speed_m_s": 100_000.0},
    }
    settings = Settings(**values)
    api_settings = settings.model_copy(update={"role": "api"})
    with ThreadPoolExecutor(3) as pool:  # all three start (and warm up) at once
        futures = [
            pool.submit(
                stack.enter_context,
                worker(settings, folder / f"worker-{i}.log", timeout_s=START_TIMEOUT_S),
            )
            for i in (1, 2)
        ]
        api_future = pool.submit(
            stack.enter_context,
            serve(api_settings, folder / "api.log", "--workers", "2", timeout_s=START_TIMEOUT_S),
        )
        workers = [f.result() for f in futures]
        api = api_future.result()
    topology = Topology(folder, stack, redis, settings, workers, api, 2, spawned)
    api_children(topology)
    return topology


def prepare_city(folder: Path) -> None:
    """Load (or build) the city's base into a private cache, before the bounded run, as
    ``correspondance build`` does before a deployment starts: the processes then only load it,
    and no other checkout sharing the default cache can replace it during the run."""
    shared = Settings().cache_dir / CITY
    private = folder / "cache" / CITY
    private.mkdir(parents=True, exist_ok=True)
    for pickle in shared.glob("base-*.pickle"):
        if not (private / pickle.name).exists():
            shutil.copy2(pickle, private / pickle.name)
    env = os.environ | {"CORRESPONDANCE_CACHE_DIR": str(folder / "cache")}
    with (folder / "build.log").open("wb") as out:
        subprocess.run(
            [sys.executable, "-m", "api.cli", "build", "--city", CITY],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=True,
        )


def owner_pid(owner: str | None) -> int | None:
    """The pid in a lock value ``host:pid:random``."""
    if owner is None:
        return None
    try:
        return int(owner.split(":")[1])
    except (IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children of a process (every thread's)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return sorted(set(out))


def api_children(topology: Topology) -> list[int]:
    """The processes of ``serve --workers 2`` (not multiprocessing's resource tracker);
    remembered, so that none outlives the soak."""
    out = []
    for pid in children(topology.api.pid):
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
            topology.spawned.add(pid)
    return out


def reap(pids: set[int]) -> None:
    """SIGKILL what is left of the API's children (a supervisor killed by
    :meth:`Process.stop` after its grace period leaves them behind)."""
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():  # still ours
                os.kill(pid, signal.SIGKILL)


def server_processes(topology: Topology) -> dict[int, str]:
    """Every server process alive now: pid → label."""
    out: dict[int, str] = {}
    api = topology.api.process
    if api.poll() is None:
        out[api.pid] = "api supervisor"
        for child in api_children(topology):
            out[child] = "api worker"
    for i, w in enumerate(topology.workers, 1):
        if w.process.poll() is None:
            out[w.pid] = f"worker {i}"
    if topology.redis.process is not None and topology.redis.process.poll() is None:
        out[topology.redis.process.pid] = "redis-server"
    return out


# -- websocket clients (child processes) ----------------------------------------------------


@dataclass
class _Trip:
    trip_id: str
    token: str
    last_seq: int = 0
    hellos: int = 0
    attempts: int = 0
    failures: int = 0  # consecutive attempts without a hello
    not_found: int = 0
    ended: bool = False
    gave_up: str | None = None
    connected: bool = False
    last_heard: float = 0.0
    socket: _Soaker | None = None


class _SoakFleet(_Fleet):
    """One client process's trips, their sockets, and what they received."""

    def __init__(self, port: int, trips: list[_Trip]) -> None:
        super().__init__()
        self.port = port
        self.trips = trips
        self.stopping = False
        self.messages: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()
        self.gaps = 0
        self.duplicates = 0
        self.reconnects = 0
        self.connect_errors = 0
        self.silent_closed = 0
        self.bad_frames = 0

    async def connect(self, trip: _Trip) -> None:
        if self.stopping or trip.gave_up or trip.ended:
            return
        if trip.attempts >= MAX_ATTEMPTS:
            trip.gave_up = "too many attempts"
            return
        trip.attempts += 1
        trip.last_heard = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Soaker(self, trip), "127.0.0.1", self.port),
                HANDSHAKE_S,
            )
        except (OSError, TimeoutError):
            self.connect_errors += 1
            self.lost(trip)

    def lost(self, trip: _Trip) -> None:
        """A connection of ``trip`` ended (or could not be made): reconnect after a backoff."""
        trip.connected = False
        trip.socket = None
        if self.stopping or trip.ended or trip.gave_up:
            return
        trip.failures += 1
        delay = min(MAX_BACKOFF_S, 0.5 * 2 ** min(trip.failures - 1, 5))
        delay *= random.uniform(0.5, 1.5)
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: loop.create_task(self.connect(trip)))

    def on_text(self, trip: _Trip, payload: bytes) -> None:
        trip.last_heard = time.monotonic()
        try:
            message = json.loads(payload)
            kind = str(message["type"])
        except (ValueError, KeyError, TypeError):
            self.bad_frames += 1
            return
        self.messages[kind] += 1
        if kind == "hello":
            trip.connected = True
            trip.failures = 0
            trip.hellos += 1
            self.hellos += 1
            if trip.hellos > 1:
                self.reconnects += 1
            if message.get("status") == "ended":
                trip.ended = True
        elif kind == "trip_ended":
            trip.ended = True
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= trip.last_seq:
                self.duplicates += 1
            else:
                self.gaps += seq - trip.last_seq - 1
                trip.last_seq = seq

    def on_close(self, trip: _Trip, code: int) -> None:
        self.closes[code] += 1
        if code == 4401:
            trip.gave_up = "unauthorized (4401)"
        elif code == 4404:
            trip.not_found += 1
            if trip.not_found >= 3:
                trip.gave_up = "trip not found (4404)"

    async def watchdog(self) -> None:
        """Close sockets that never finished their handshake or went silent."""
        while not self.stopping:
            await asyncio.sleep(5.0)
            now = time.monotonic()
            for trip in self.trips:
                s = trip.socket
                limit = SILENT_S if trip.connected else HANDSHAKE_S
                if s is not None and s.transport is not None and now - trip.last_heard > limit:
                    self.silent_closed += 1
                    s.transport.abort()

    def stats(self) -> dict[str, Any]:
        return {
            "sockets": len(self.trips),
            "open_now": sum(1 for t in self.trips if t.connected),
            "ever_opened": sum(1 for t in self.trips if t.hellos),
            "hellos": self.hellos,
            "reconnects": self.reconnects,
            "attempts": sum(t.attempts for t in self.trips),
            "connect_errors": self.connect_errors,
            "refused_handshakes": self.refused,
            "silent_closed": self.silent_closed,
            "closes": {str(k): v for k, v in self.closes.items()},
            "messages": dict(self.messages),
            "seq_gaps": self.gaps,
            "seq_duplicates": self.duplicates,
            "bad_frames": self.bad_frames,
            "ended": sum(1 for t in self.trips if t.ended),
            "gave_up": dict(Counter(t.gave_up for t in self.trips if t.gave_up)),
        }


class _Soaker(_Watcher):
    """:class:`benchmarks.bench_trips._Watcher` (handshake, framing, pings) for one trip,
    reporting every message to its fleet and asking it to reconnect when it drops."""

    def __init__(self, fleet: _SoakFleet, trip: _Trip) -> None:
        path = f"/ws/v1/trips/{trip.trip_id}?token={trip.token}&after_seq={trip.last_seq}"
        super().__init__(fleet, path, fleet.port)
        self.soak = fleet
        self.trip = trip
        trip.socket = self

    def data_received(self, data: bytes) -> None:
        refused = self.fleet.refused
        super().data_received(data)
        if self.fleet.refused != refused and self.transport is not None:
            self.transport.abort()

    def frame(self, head0: int, payload: bytes) -> None:
        opcode = head0 & 0x0F
        if head0 & 0x40 and self.inflate is not None:
            payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
            head0 &= ~0x40
        if opcode in (0, 1):
            self.soak.on_text(self.trip, payload)
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.soak.on_close(self.trip, code)
            if self.transport is not None:
                self.transport.close()
        else:
            super().frame(head0, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.trip.socket is self:
            self.soak.lost(self.trip)


async def _hold(port: int, pairs: list[tuple[str, str]], pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    fleet = _SoakFleet(port, [_Trip(t, k) for t, k in pairs])
    watchdog = loop.create_task(fleet.watchdog())
    for i in range(0, len(fleet.trips), CONNECT_BATCH):
        batch = fleet.trips[i : i + CONNECT_BATCH]
        await asyncio.gather(*(fleet.connect(t) for t in batch))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(t.hellos or t.gave_up for t in batch):
            await asyncio.sleep(0.1)
    pipe.send(("ready", fleet.stats()))
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "stats":
            pipe.send(("stats", fleet.stats()))
        elif command == "stop":
            break
    stats = fleet.stats()
    fleet.stopping = True
    watchdog.cancel()
    for trip in fleet.trips:
        if trip.socket is not None and trip.socket.transport is not None:
            trip.socket.transport.close()
    finals = [(t.trip_id, t.last_seq, t.ended, t.gave_up) for t in fleet.trips]
    pipe.send(("final", stats, finals))


def _client_process(port: int, pairs: list[tuple[str, str]], pipe: Any) -> None:
    """One client process (spawned): holds the sockets of ``pairs`` (trip id, token)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    random.seed()
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_hold(port, pairs, pipe))


class Clients:
    """The client processes, asked for their figures through pipes."""

    def __init__(self, port: int, pairs: list[tuple[str, str]], processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Any] = []
        self.children: list[Any] = []
        for k in range(processes):
            ours, theirs = ctx.Pipe()
            child = ctx.Process(
                target=_client_process, args=(port, pairs[k::processes], theirs), daemon=True
            )
            child.start()
            self.children.append(child)
            self.pipes.append(ours)

    async def ask(self, command: str | None, expect: str, timeout: float) -> list[Any]:
        """Send ``command`` (if any) to every client process and gather each one's answer
        tagged ``expect``; late answers to an earlier, timed-out question are skipped.
        TimeoutError after ``timeout`` (no thread is left waiting on a pipe)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        if command is not None:
            for pipe in self.pipes:
                pipe.send(command)

        def answer(pipe: Any) -> Any:
            while (left := deadline - time.monotonic()) > 0:
                if pipe.poll(min(left, 1.0)):
                    reply = pipe.recv()
                    if reply[0] == expect:
                        return reply
            raise TimeoutError(f"client process: no {expect!r} answer in {timeout:.0f} s")

        answers = [loop.run_in_executor(None, answer, pipe) for pipe in self.pipes]
        return list(await asyncio.gather(*answers))

    @staticmethod
    def merge(stats: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in stats:
            for key, value in s.items():
                if isinstance(value, dict):
                    merged = Counter(out.get(key, {}))
                    merged.update(value)
                    out[key] = dict(merged)
                else:
                    out[key] = out.get(key, 0) + value
        return out

    def close(self) -> None:
        for child in self.children:
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join(5)


# -- the soak -------------------------------------------------------------------------------


@dataclass
class Contributor:
    address: str
    token: str
    http: httpx.AsyncClient


@dataclass
class Soak:
    args: argparse.Namespace
    topology: Topology
    tally: Tally
    http: httpx.AsyncClient
    rng: random.Random
    centre: tuple[float, float] = (-30.025, -51.21)  # downtown, between the demo's points
    bbox: tuple[float, float, float, float] = (-30.1134, -51.2664, -29.9876, -51.1321)  # S W N E
    itineraries: list[dict[str, Any]] = field(default_factory=list)
    spots: list[tuple[float, float, float]] = field(default_factory=list)  # lat, lon, heading
    held: list[tuple[str, str]] = field(default_factory=list)  # trips with a socket
    churn: list[tuple[str, str]] = field(default_factory=list)  # trips started during load
    deleted: set[str] = field(default_factory=set)  # churned trips their traveller deleted (204)
    active: list[tuple[float, int]] = field(default_factory=list)  # (t, the city's active trips)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (token, report_id)
    report_outcomes: Counter[str] = field(default_factory=Counter)
    contributors: list[Contributor] = field(default_factory=list)
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)  # series label → first seen
    writer: list[tuple[float, str | None]] = field(default_factory=list)  # lock transitions
    events: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warm_end: float = math.inf
    replacement: asyncio.Task[None] | None = None
    load_end: float = math.inf

    @property
    def url(self) -> str:
        return self.topology.api.url or ""

    def now(self) -> float:
        return time.monotonic() - self.tally.t0

    # -- queries --------------------------------------------------------------------------

    def random_point(self) -> str:
        lat0, lon0 = self.centre
        s, w, n, e = self.bbox
        lat = min(max(lat0 + self.rng.uniform(-0.03, 0.03), s), n)
        lon = min(max(lon0 + self.rng.uniform(-0.035, 0.035), w), e)
        return f"{lat:.5f},{lon:.5f}"

    def depart(self) -> str:
        minute = self.rng.randint(-15, 15)
        return f"{self.args.date}T{13 + (minute // 60)}:{minute % 60:02d}:00"

    async def plan(self, origin: str, destination: str, modes: str) -> list[dict[str, Any]]:
        response = await self.tally.call(
            self.http,
            "GET /plan",
            "GET",
            f"{self.url}/api/v1/plan",
            params={"from": origin, "to": destination, "depart": self.depart(), "modes": modes},
        )
        if response is None or response.status_code != 200:
            return []
        itineraries: list[dict[str, Any]] = response.json()["itineraries"]
        return itineraries

    async def start_trip(self, itinerary: dict[str, Any]) -> tuple[str, str] | None:
        response = await self.tally.call(
            self.http,
            "POST /trips",
            "POST",
            f"{self.url}/api/v1/trips",
            json={"itinerary": itinerary},
        )
        if response is None or response.status_code != 201:
            return None
        body = response.json()
        return str(body["trip_id"]), str(body["token"])

    # -- set-up -----------------------------------------------------------------------------

    async def city(self) -> None:
        response = await self.tally.call(
            self.http, "GET /cities", "GET", f"{self.url}/api/v1/cities"
        )
        if response is None or response.status_code != 200:
            return
        for city in response.json()["cities"]:
            if city["id"] == CITY:
                min_lon, min_lat, max_lon, max_lat = (float(x) for x in city["bbox"])
                self.bbox = (min_lat, min_lon, max_lat, max_lon)

    async def car_itineraries(self, want: int, deadline: float) -> None:
        """Car-share itineraries (and report spots on their drive legs) from ``/plan``."""
        pairs = [(DEMO_FROM, DEMO_TO)]
        tries = 0
        while len(self.itineraries) < want and tries < 4 * want and time.monotonic() < deadline:
            batch = pairs or [(self.random_point(), self.random_point()) for _ in range(4)]
            pairs = []
            tries += len(batch)
            answers = await asyncio.gather(
                *(self.plan(a, b, "walk,transit,carshare") for a, b in batch)
            )
            for itineraries in answers:
                for it in itineraries:
                    if any(
                        leg["mode"] == "carshare" and leg.get("drive_edges") for leg in it["legs"]
                    ):
                        self.itineraries.append(it)
                        self.spots += drive_spots(it)
                        break
        if not self.itineraries:
            raise RuntimeError("no car-share itinerary found: is the car-share feed simulated?")

    async def start_trips(self, n: int, deadline: float) -> None:
        """``n`` trips (sixteen requests at a time), round-robin over the itineraries."""
        tries = 0
        while len(self.held) < n and tries < 2 * n and time.monotonic() < deadline:
            k = min(16, n - len(self.held))
            tries += k
            started = await asyncio.gather(
                *(
                    self.start_trip(self.itineraries[(tries + i) % len(self.itineraries)])
                    for i in range(k)
                )
            )
            self.held += [s for s in started if s is not None]

    # -- load -------------------------------------------------------------------------------

    async def paced(
        self, rate: float, concurrency: int, end: float, one: Callable[[], Awaitable[None]]
    ) -> int:
        """``one()`` at ``rate`` per second over ``concurrency`` lanes until ``end``, at most
        ``rate × duration × 1.2`` times; the number of calls."""
        if rate <= 0:
            return 0
        budget = int(rate * max(0.0, end - time.monotonic()) * 1.2) + concurrency
        period = concurrency / rate
        done = 0

        async def lane(offset: float) -> None:
            nonlocal done
            await asyncio.sleep(offset)
            while time.monotonic() < end and done < budget:
                t0 = time.monotonic()
                done += 1
                await one()
                await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))

        await asyncio.gather(*(lane(i * period / concurrency) for i in range(concurrency)))
        return done

    async def one_plan(self) -> None:
        await self.plan(self.random_point(), self.random_point(), self.rng.choice(PLAN_MODES))

    async def one_report(self) -> None:
        who = self.rng.choice(self.contributors)
        lat, lon, heading = self.rng.choice(self.spots)
        body = {
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "heading": heading,
            "kind": "congestion",
            "level": self.rng.randint(2, 4),
            "mode": "car",
        }
        response = await self.tally.call(
            who.http,
            "POST /reports",
            "POST",
            f"{self.url}/api/v1/reports",
            json=body,
            headers={TOKEN_HEADER: who.token},
        )
        if response is None:
            self.report_outcomes["transport error"] += 1
        elif response.status_code == 202:
            ack = response.json()
            if ack.get("report_id"):
                self.acked.append((who.token, str(ack["report_id"])))
            self.report_outcomes[str(ack.get("status"))] += 1
        else:
            self.report_outcomes[f"HTTP {response.status_code}"] += 1

    async def one_trip(self) -> None:
        started = await self.start_trip(self.rng.choice(self.itineraries))
        if started is not None:
            self.churn.append(started)
            await self.export(*started)
        # the oldest trip started during the load ends (deleted by its traveller): the active
        # population stays flat once CHURN_LIVE_S of them run, as in a service whose trips
        # end as fast as they start (see memory() and benchmarks/README.md)
        live = [t for t in self.churn if t[0] not in self.deleted]
        if len(live) > self.args.trip_rate * CHURN_LIVE_S:
            await self.delete(*live[0])
        if self.held:  # and someone else's, as a client checking its trip would
            await self.export(*self.rng.choice(self.held))

    async def delete(self, trip_id: str, token: str) -> None:
        response = await self.tally.call(
            self.http,
            "DELETE /trips/{id}",
            "DELETE",
            f"{self.url}/api/v1/trips/{trip_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        if response is not None and response.status_code == 204:
            self.deleted.add(trip_id)

    async def export(self, trip_id: str, token: str) -> int | None:
        response = await self.tally.call(
            self.http,
            "GET /trips/{id}",
            "GET",
            f"{self.url}/api/v1/trips/{trip_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        return None if response is None else response.status_code

    # -- monitors -----------------------------------------------------------------------------

    async def sample_rss(self, end: float) -> None:
        api_workers: set[int] = set()
        while time.monotonic() < end:
            t = self.now()
            processes = server_processes(self.topology)
            now_api = {pid for pid, label in processes.items() if label == "api worker"}
            if api_workers and now_api - api_workers:  # uvicorn replaced a dead worker
                self.notes.append(
                    f"t={t:.0f} s: new API worker process {sorted(now_api - api_workers)}"
                )
                log(self.notes[-1])
            api_workers |= now_api
            for pid, label in processes.items():
                name = f"{label} (pid {pid})"
                with contextlib.suppress(OSError, RuntimeError):
                    kib = rss_kib(pid)
                    self.rss.setdefault(name, []).append((round(t, 1), kib))
                    self.started_at.setdefault(name, t)
            await self.count_active(t)
            await asyncio.sleep(RSS_EVERY_S)

    async def count_active(self, t: float) -> None:
        """Sample the size of the city's set of active trips (skipped while Redis is down)."""
        client = aioredis.Redis(
            port=self.topology.redis.port, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        try:
            n = await client.scard(f"{self.topology.prefix}{active_key(CITY)}")
            self.active.append((round(t, 1), int(n)))
        except (aioredis.RedisError, OSError):
            pass
        finally:
            await client.aclose()

    async def trace_memory(self, end: float) -> None:
        """``--trace-memory``: signal every server process (redis-server aside) once the
        faults have settled (tracing starts) and at the end of the load (snapshot)."""
        while time.monotonic() < end and self.now() < self.steady_from():
            await asyncio.sleep(1.0)
        if time.monotonic() >= end:
            return
        traced = [p for p, label in server_processes(self.topology).items() if "redis" not in label]
        for pid in traced:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR2)
        self.events["memtrace_from"] = self.now()
        await asyncio.sleep(max(0.0, end - 2 - time.monotonic()))
        for pid in traced:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR2)
        self.events["memtrace_to"] = self.now()

    async def watch_writer(self, end: float) -> None:
        lock = f"{self.topology.prefix}lock:writer:{CITY}"
        last: str | bool | None = False  # False: nothing seen yet
        while time.monotonic() < end:
            client = aioredis.Redis(
                port=self.topology.redis.port, socket_connect_timeout=0.5, socket_timeout=0.5
            )
            try:
                while time.monotonic() < end:
                    try:
                        raw = await client.get(lock)
                    except (aioredis.RedisError, OSError):
                        owner: str | None = "(redis down)"
                    else:
                        owner = raw.decode() if isinstance(raw, bytes) else None
                    if owner != last:
                        self.writer.append((round(self.now(), 2), owner))
                        last = owner
                    if owner == "(redis down)":
                        break  # a fresh connection next time
                    await asyncio.sleep(0.2)
            finally:
                await client.aclose()
            await asyncio.sleep(0.2)

    # -- faults -----------------------------------------------------------------------------

    async def kill_writer(self) -> None:
        owner = self.writer[-1][1] if self.writer else None
        pid = owner_pid(owner)
        victims = [w for w in self.topology.workers if w.pid == pid]
        if not victims:
            self.notes.append(f"writer kill: no worker of ours holds the lock (owner {owner!r})")
            log(self.notes[-1])
            return
        victim = victims[0]
        await asyncio.to_thread(victim.kill)
        self.events["writer_killed"] = self.now()
        self.events["writer_killed_pid"] = float(victim.pid)
        log(f"SIGKILLed the writer worker (pid {victim.pid}); starting a new worker")
        # in the background: the Redis restart keeps its schedule however long this takes
        self.replacement = asyncio.create_task(self.replace_worker())

    async def replace_worker(self) -> None:
        try:
            # it must run by 30 s after the load ends, or it is stopped (inside the bound)
            timeout = max(10.0, self.load_end + 30.0 - time.monotonic())
            new = await asyncio.to_thread(self.topology.add_worker, timeout)
            self.events["new_worker_running"] = self.now()
            log(f"new worker running (pid {new.pid})")
        except Exception as exc:  # reported; the soak goes on
            self.notes.append(f"the replacement worker did not start: {exc}")
            log(self.notes[-1])

    async def restart_redis(self) -> None:
        redis = self.topology.redis
        t_down = time.monotonic()
        self.events["redis_killed"] = self.now()
        log("SIGKILL redis-server")
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(self.args.redis_down_s)
        try:
            await asyncio.to_thread(redis.start)
        except RuntimeError as exc:
            self.notes.append(f"redis-server did not restart: {exc}")
            log(self.notes[-1])
            self.tally.outages.append((t_down, math.inf))
            return
        self.events["redis_up"] = self.now()
        self.tally.outages.append((t_down, time.monotonic()))
        log(
            f"redis-server restarted on port {redis.port} "
            f"({self.now() - self.events['redis_killed']:.1f} s down)"
        )

    async def faults(self, t_load: float, duration: float) -> None:
        await asyncio.sleep(max(0.0, t_load + WRITER_KILL_AT * duration - time.monotonic()))
        self.warm_end = self.now()
        await self.kill_writer()
        await asyncio.sleep(max(0.0, t_load + REDIS_RESTART_AT * duration - time.monotonic()))
        await self.restart_redis()

    def steady_from(self) -> float:
        """When the faults are over and settled (load-phase seconds): ``SETTLE_S`` after both
        Redis answers again and the replacement worker runs; infinite if either never did."""
        ends = [self.events.get("redis_up", math.inf)]
        if "writer_killed_pid" in self.events:
            ends.append(self.events.get("new_worker_running", math.inf))
        return max(ends) + SETTLE_S

    async def progress(self, clients: Clients, end: float) -> None:
        while time.monotonic() < end - 1:
            await asyncio.sleep(min(30.0, max(0.0, end - 1 - time.monotonic())))
            with contextlib.suppress(Exception):
                stats = Clients.merge([a[1] for a in await clients.ask("stats", "stats", 20)])
                fives = sum(1 for e in self.tally.errors if e["status"])
                log(
                    f"t={self.now():.0f}s requests={sum(self.tally.statuses.values())} 5xx={fives}"
                    f" transport={sum(1 for e in self.tally.errors if not e['status'])}"
                    f" reports acked={len(self.acked)} sockets open={stats['open_now']}/"
                    f"{stats['sockets']} reconnects={stats['reconnects']} "
                    f"messages={sum(stats['messages'].values())}"
                )


def drive_spots(itinerary: dict[str, Any]) -> list[tuple[float, float, float]]:
    """Midpoints and headings of the ≥ 20 m segments of an itinerary's drive legs."""
    out = []
    for leg in itinerary["legs"]:
        if not leg.get("drive_edges"):
            continue
        coords = leg["geometry"]["coordinates"]
        for (lon1, lat1), (lon2, lat2) in itertools.pairwise(coords):
            dy = (lat2 - lat1) * 111_320.0
            dx = (lon2 - lon1) * 111_320.0 * math.cos(math.radians(lat1))
            if math.hypot(dx, dy) >= 20.0:
                heading = round(math.degrees(math.atan2(dx, dy)) % 360.0, 1)
                out.append(((lat1 + lat2) / 2, (lon1 + lon2) / 2, float(heading)))
    return out


# -- checks and figures -----------------------------------------------------------------------


async def check_reports(soak: Soak) -> dict[str, Any]:
    """Every acknowledged report must be in its contributor's export."""
    by_token: dict[str, set[str]] = {}
    for token, report_id in soak.acked:
        by_token.setdefault(token, set()).add(report_id)
    lost: list[str] = []
    unchecked = 0
    sem = asyncio.Semaphore(8)

    async def one(token: str, ids: set[str]) -> None:
        nonlocal unchecked
        async with sem:
            response = await soak.tally.call(
                soak.http,
                "GET /me/reports",
                "GET",
                f"{soak.url}/api/v1/me/reports",
                headers={TOKEN_HEADER: token},
            )
        if response is None or response.status_code != 200:
            unchecked += len(ids)
            return
        have = {str(r.get("report_id")) for r in response.json()["reports"]}
        lost.extend(sorted(ids - have))

    await asyncio.gather(*(one(t, ids) for t, ids in by_token.items()))
    return {
        "acknowledged": len(soak.acked),
        "contributors": len(by_token),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "unchecked": unchecked,
    }


async def check_sessions(soak: Soak, ended: set[str]) -> dict[str, Any]:
    """Every started trip still answers its export, unless it legitimately ended."""
    outcome: Counter[str] = Counter()
    lost: list[str] = []
    sem = asyncio.Semaphore(16)

    async def one(trip_id: str, token: str) -> None:
        async with sem:
            status = await soak.export(trip_id, token)
        if status == 200:
            outcome["answers"] += 1
        elif status == 404 and trip_id in ended:
            outcome["ended and expired"] += 1
        elif status == 404 and trip_id in soak.deleted:
            outcome["deleted by the client (204)"] += 1
        elif status is None or status >= 500:
            outcome[f"unchecked ({status})"] += 1
        else:
            outcome[f"lost ({status})"] += 1
            lost.append(trip_id)

    await asyncio.gather(*(one(t, k) for t, k in soak.held + soak.churn))
    return {
        "started": len(soak.held) + len(soak.churn),
        "outcomes": dict(outcome),
        "lost": len(lost),
        "lost_ids": lost[:20],
    }


def takeover(soak: Soak) -> dict[str, Any]:
    """Who held the writer lock when, and how long the city went without a writer."""
    out: dict[str, Any] = {"transitions": soak.writer}
    killed = soak.events.get("writer_killed")
    victim = soak.events.get("writer_killed_pid")
    if killed is not None:
        for t, owner in soak.writer:
            pid = owner_pid(owner)
            if t >= killed and pid is not None and pid != victim:
                out["takeover_s"] = round(t - killed, 2)
                out["new_writer_pid"] = pid
                break
    redis_up = soak.events.get("redis_up")
    if redis_up is not None:
        held = [owner for t, owner in soak.writer if t <= redis_up]
        if held and owner_pid(held[-1]) is not None:  # the lock outlived the restart (AOF)
            out["writer_after_redis_restart_s"] = 0.0
        for t, owner in soak.writer:
            if "writer_after_redis_restart_s" in out:
                break
            if t >= redis_up and owner_pid(owner) is not None:
                out["writer_after_redis_restart_s"] = round(t - redis_up, 2)
    return out


def memory(soak: Soak) -> dict[str, Any]:
    """Per process: RSS growth over the steady period, from a baseline taken ``SETTLE_S``
    after the faults (or 30 s after a later start) to the end, with its slope; and, for
    comparison, the growth since the end of warm-up (the moment of the writer kill)."""
    out: dict[str, Any] = {}
    steady_from = soak.steady_from()
    for name, series in soak.rss.items():
        first = soak.started_at[name]
        base_t = max(steady_from, first + 30.0)
        steady = [s for s in series if s[0] >= base_t]
        last = series[-1]
        entry: dict[str, Any] = {
            "last_t": last[0],
            "last_mib": round(last[1] / 1024, 1),
            "peak_mib": round(max(s[1] for s in series) / 1024, 1),
            "samples": len(series),
        }
        if steady:
            base = steady[0]
            entry |= {
                "baseline_t": base[0],
                "baseline_mib": round(base[1] / 1024, 1),
                "steady_s": round(last[0] - base[0], 1),
                "growth_pct": round(100.0 * (last[1] - base[1]) / base[1], 2),
                "slope_mib_per_min": round(_slope(steady) * 60 / 1024, 2),
            }
        if first <= soak.warm_end:
            before = [s for s in series if s[0] <= soak.warm_end]
            entry["since_warm_up_pct"] = round(100.0 * (last[1] - before[-1][1]) / before[-1][1], 2)
        out[name] = entry
    return out


def population(soak: Soak) -> dict[str, Any]:
    """The city's active trips over the steady period (from the memory baseline, ``SETTLE_S``
    after the faults, to the end): what the engines keep grows with them, so a memory
    figure means "no leak" only while they stay flat (trips are started and deleted at the
    same rate once ``CHURN_LIVE_S`` of them run)."""
    steady = [n for t, n in soak.active if t >= soak.steady_from()]
    if not steady:
        return {"samples": len(soak.active)}
    return {
        "baseline": steady[0],
        "end": steady[-1],
        "min": min(steady),
        "max": max(steady),
        "growth_pct": round(100.0 * (steady[-1] - steady[0]) / max(1, steady[0]), 2),
        "started_during_load": len(soak.churn),
        "deleted_during_load": len(soak.deleted),
    }


def _slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) samples, value per second (0 for fewer than 2)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if var == 0 else sum((t - mt) * (v - mv) for t, v in samples) / var


def memtrace(folder: Path, soak: Soak) -> dict[str, Any]:
    """``--trace-memory``: per process, what it allocated over the steady period and still
    holds (tracemalloc, top lines of the product) and the object types whose count grew."""
    deadline = time.monotonic() + 30  # the handlers write their files after the signal
    labels = {int(name.split("(pid ")[1].rstrip(")")): name for name in soak.rss}
    out: dict[str, Any] = {}
    for base in sorted(folder.glob("*-base.json")):
        pid = int(base.name.split("-")[0])
        end = folder / f"{pid}-end.json"
        while not end.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not end.exists():
            continue
        before = json.loads(base.read_text())["objects"]
        after = json.loads(end.read_text())
        grown = Counter({k: n - before.get(k, 0) for k, n in after["objects"].items()})
        out[labels.get(pid, str(pid))] = {
            "traced_kib": round(after["traced_bytes"] / 1024, 1),
            "traced_blocks": after["traced_blocks"],
            "top": [
                f"{t['kib']} KiB in {t['blocks']} blocks: "
                + " < ".join(w.replace(str(REPO) + "/", "") for w in t["where"][:3])
                for t in after["top"][:8]
            ],
            "objects_grown": {k: n for k, n in grown.most_common(12) if n > 0},
        }
    return out


def tracebacks(folder: Path) -> dict[str, list[str]]:
    """The last line of every traceback in each server log (distinct, counted)."""
    out: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        found: Counter[str] = Counter()
        for i, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last)"):
                j = i + 1
                while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                    j += 1
                if j < len(lines):
                    found[re.sub(r"0x[0-9a-f]+", "0x…", lines[j])[:200]] += 1
        if found:
            out[path.name] = [f"{n} × {text}" for text, n in found.most_common()]
    return out


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, folder: Path, began: float) -> dict[str, Any]:
    hard_end = began + HARD_BOUND_S
    tally = Tally(t0=time.monotonic())
    with ExitStack() as stack:
        if args.trace_memory:  # inherited by every server process started below
            (folder / "memtrace").mkdir(exist_ok=True)
            os.environ["SOAK_MEMTRACE_DIR"] = str(folder / "memtrace")
            os.environ["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(MEMTRACE), os.environ.get("PYTHONPATH")) if p
            )
        log(f"starting redis-server, two workers and serve --workers 2 (logs in {folder})")
        topology = await asyncio.to_thread(start_topology, stack, folder, args)
        log(f"topology up after {time.monotonic() - began:.0f} s (api at {topology.api.url})")
        rng = random.Random(args.seed)
        limits = httpx.Limits(
            max_connections=64, max_keepalive_connections=32, keepalive_expiry=CLIENT_KEEPALIVE_S
        )
        async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as http:
            soak = Soak(args, topology, tally, http, rng)
            await soak.city()
            setup_end = min(hard_end - CHECK_RESERVE_S - 30, time.monotonic() + 150)
            await soak.car_itineraries(args.itineraries, setup_end)
            log(f"{len(soak.itineraries)} car-share itineraries, {len(soak.spots)} report spots")
            await soak.start_trips(args.sockets, setup_end)
            log(f"{len(soak.held)} trips started")
            for _ in range(args.contributors):
                address = f"127.{rng.randint(10, 250)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
                transport = httpx.AsyncHTTPTransport(
                    local_address=address,
                    limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S),
                )
                soak.contributors.append(
                    Contributor(
                        address,
                        f"soak-{rng.getrandbits(128):032x}",
                        httpx.AsyncClient(transport=transport, timeout=30, trust_env=False),
                    )
                )
            port = int((topology.api.url or "").rsplit(":", 1)[1])
            clients = Clients(port, soak.held, args.client_processes)
            try:
                ready = await clients.ask(
                    None, "ready", max(30.0, setup_end + 60 - time.monotonic())
                )
                opened = Clients.merge([r[1] for r in ready])
                log(f"{opened['ever_opened']} of {len(soak.held)} sockets open")
                t_load = time.monotonic()
                duration = min(args.minutes * 60.0, hard_end - CHECK_RESERVE_S - t_load)
                if duration < args.minutes * 60.0:
                    soak.notes.append(
                        f"load phase shortened to {duration:.0f} s (start-up took "
                        f"{t_load - began:.0f} s; the command is bounded at {HARD_BOUND_S:.0f} s)"
                    )
                    log(soak.notes[-1])
                if duration < 30:
                    raise RuntimeError("no time left for the load phase")
                end = soak.load_end = t_load + duration
                tally.t0 = t_load  # times in the figures are seconds into the load phase
                soak.events["load_s"] = duration
                log(f"load phase: {duration:.0f} s")
                monitors = [
                    asyncio.create_task(soak.sample_rss(end + 1)),
                    asyncio.create_task(soak.watch_writer(end)),
                ]
                if args.trace_memory:
                    monitors.append(asyncio.create_task(soak.trace_memory(end)))
                counts = await asyncio.gather(
                    soak.paced(args.plan_rate, 4, end, soak.one_plan),
                    soak.paced(args.report_rate, 8, end, soak.one_report),
                    soak.paced(args.trip_rate, 2, end, soak.one_trip),
                    soak.faults(t_load, duration),
                    soak.progress(clients, end),
                )
                await asyncio.gather(*monitors)
                if soak.replacement is not None:
                    await soak.replacement  # bounded by the end of the load phase
                log(
                    f"load phase over: {counts[0]} plans, {counts[1]} reports, "
                    f"{counts[2]} trip rounds"
                )
                at_end = Clients.merge([a[1] for a in await clients.ask("stats", "stats", 30)])
                finals = await clients.ask("stop", "final", 30)
                sockets = Clients.merge([f[1] for f in finals])
                sockets["open_at_end"] = at_end["open_now"]
                ended = {t for f in finals for t, _seq, done, _why in f[2] if done}
            finally:
                clients.close()
                for c in soak.contributors:
                    await c.http.aclose()
            log("checking every acknowledged report and every trip")
            reports = await check_reports(soak)
            sessions = await check_sessions(soak, ended)
            alive = {
                "api": topology.api.process.poll() is None,
                "workers": [w.process.poll() is None for w in topology.workers],
            }
            health = await tally.call(http, "GET /health", "GET", f"{soak.url}/api/v1/health")
        tally.classify()
        api_children(topology)
        log("stopping the processes")
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_s": soak.events.get("load_s"),
        "events": soak.events,
        "notes": soak.notes,
        "requests": {
            f"{r} {s or 'transport error'}": n for (r, s), n in sorted(tally.statuses.items())
        },
        "errors": tally.errors,
        "latency_p50_ms": {
            r: round(1000 * sorted(v)[len(v) // 2], 1) for r, v in tally.latency.items() if v
        },
        "reports": reports | {"outcomes": dict(soak.report_outcomes)},
        "sessions": sessions,
        "sockets": sockets,
        "writer": takeover(soak),
        "memory": memory(soak),
        "active_trips": population(soak),
        "active_trips_samples": soak.active,
        "rss_kib": soak.rss,  # every sample: (t, KiB) per process
        "warm_up_end_s": soak.warm_end,
        "steady_from_s": round(soak.steady_from(), 1),
        "processes_alive_at_end": alive,
        "health_at_end": None if health is None else health.status_code,
        "tracebacks": tracebacks(folder),
        "memtrace": memtrace(folder / "memtrace", soak) if args.trace_memory else None,
        "workdir": str(folder),
    }


def verdict(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(measure, figure, target, met; None when informative)."""
    errors = result["errors"]
    fives = [e for e in errors if e["status"]]
    outage = [e for e in fives if e["status"] == 503 and e["during_redis_restart"]]
    other = [e for e in fives if e not in outage]
    transport = [e for e in errors if not e["status"]]
    by = Counter(f"{e['route']} {e['status']} {e['code']}" for e in other)
    by_outage = Counter(f"{e['route']} {e['status']} {e['code']}" for e in outage)
    by_transport = Counter(
        f"{e['route']} {e['code']} ({e.get('connection', '?')}, {e.get('detail', '')})"
        for e in transport
    )
    total = sum(result["requests"].values())
    classes: Counter[str] = Counter()
    for key, n in result["requests"].items():
        status = key.rsplit(" ", 1)[-1]
        classes[f"{status[0]}xx" if status.isdigit() else "transport"] += n
    mem = result["memory"]
    ended_at = result["load_s"] or 0
    # every server process but redis-server (its data grows) alive at the end and measured
    # over a long enough steady period
    survivors = {
        k: v
        for k, v in mem.items()
        if "redis" not in k
        and v["last_t"] >= ended_at - 2 * RSS_EVERY_S
        and v.get("steady_s", 0) >= MIN_STEADY_S
    }
    worst = max((v["growth_pct"] for v in survivors.values()), default=float("nan"))
    active = result.get("active_trips", {})
    sockets = result["sockets"]
    writer = result["writer"]
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            "requests by class",
            ", ".join(f"{k} {v}" for k, v in sorted(classes.items())) + f" (of {total})",
            "",
            None,
        ),
        (
            "5xx (excluding 503 during the Redis restart)",
            f"{len(other)}" + (": " + "; ".join(f"{k} ×{n}" for k, n in by.items()) if by else ""),
            "0",
            not other,
        ),
        (
            "503 in flight during the Redis restart (kill → up + 10 s)",
            f"{len(outage)}"
            + (": " + "; ".join(f"{k} ×{n}" for k, n in by_outage.items()) if by_outage else ""),
            "0 (issue), shown apart",
            None,
        ),
        (
            "transport errors (reset, refused, time-out)",
            f"{len(transport)}"
            + (
                ": " + "; ".join(f"{k} ×{n}" for k, n in by_transport.items())
                if by_transport
                else ""
            ),
            "0",
            not transport,
        ),
        (
            "acknowledged reports lost",
            f"{result['reports']['lost']} of {result['reports']['acknowledged']}"
            f" ({result['reports']['contributors']} contributors checked,"
            f" {result['reports']['unchecked']} unchecked)",
            "0",
            result["reports"]["lost"] == 0 and result["reports"]["unchecked"] == 0,
        ),
        (
            "sessions lost",
            f"{result['sessions']['lost']} of {result['sessions']['started']} "
            f"({', '.join(f'{k} {v}' for k, v in result['sessions']['outcomes'].items())})",
            "0",
            result["sessions"]["lost"] == 0
            and all(not k.startswith("unchecked") for k in result["sessions"]["outcomes"]),
        ),
        (
            "websockets",
            f"{sockets['ever_opened']} of {sockets['sockets']} opened, "
            f"{sockets['open_at_end']} open at the end, {sockets['reconnects']} reconnects "
            f"({sockets['attempts']} attempts, {sockets['connect_errors']} connect errors, "
            f"{sockets['silent_closed']} silent closed), "
            f"close codes {sockets['closes']}",
            "",
            None,
        ),
        (
            "websocket messages",
            f"{sum(sockets['messages'].values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(sockets['messages'].items()))}); "
            f"seq gaps {sockets['seq_gaps']}, duplicates {sockets['seq_duplicates']}",
            "no gaps",
            sockets["seq_gaps"] == 0,
        ),
        (
            "writer takeover after SIGKILL",
            f"{writer.get('takeover_s', 'none')} s"
            + (
                f"; writer again {writer['writer_after_redis_restart_s']} s after Redis is up"
                if "writer_after_redis_restart_s" in writer
                else ""
            ),
            "≤ 2 TTL",
            "takeover_s" in writer and writer["takeover_s"] <= 2 * result["config"]["writer_ttl"],
        ),
        (
            "RSS growth after warm-up, from the faults settled (worst)",
            f"{worst:+.1f} % over {len(survivors)} processes, steady from "
            f"t={result['steady_from_s']} s",
            f"≤ {GROWTH_TARGET_PCT:.0f} %",
            bool(survivors) and worst <= GROWTH_TARGET_PCT,
        ),
        (
            "active trips over the steady period (flat by design)",
            (
                f"{active['baseline']} → {active['end']} (min {active['min']}, max "
                f"{active['max']}; {active['started_during_load']} started and "
                f"{active['deleted_during_load']} deleted during the load)"
                if "baseline" in active
                else "not sampled"
            ),
            "",
            None,
        ),
    ]
    return rows


def print_result(result: dict[str, Any]) -> bool:
    rows = verdict(result)
    print(f"\nbench_soak: {result['load_s']:.0f} s of load, {result['config']['sockets']} sockets")
    for note in result["notes"]:
        print(f"  note: {note}")
    print(f"{'measure':<58} {'target':<22} ok   figure")
    for name, figure, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<58} {target:<22} {mark:<4} {figure}")
    print(
        "\nRSS (MiB) per server process over the steady period: baseline → last (peak), "
        "growth, slope; growth since warm-up (the writer kill) for comparison"
    )
    for name, m in result["memory"].items():
        if "growth_pct" not in m:
            print(f"  {name:<36} (no steady period: {m['samples']} samples to t={m['last_t']})")
            continue
        print(
            f"  {name:<36} {m['baseline_mib']:>8} → {m['last_mib']:>8} ({m['peak_mib']:>8}) "
            f"{m['growth_pct']:+6.1f} % {m['slope_mib_per_min']:+6.2f} MiB/min "
            f"[t={m['baseline_t']}→{m['last_t']} s]"
            + (
                f"; since warm-up {m['since_warm_up_pct']:+.1f} %"
                if "since_warm_up_pct" in m
                else ""
            )
        )
    print("\nwriter lock (t s into the load: owner):")
    for t, owner in result["writer"]["transitions"]:
        print(f"  {t:>8.2f}  {owner}")
    print(f"\nreports: {result['reports']['outcomes']}")
    if result["tracebacks"]:
        print("\ntracebacks in the server logs:")
        for name, found in result["tracebacks"].items():
            for line in found[:8]:
                print(f"  {name}: {line}")
    if result.get("memtrace"):
        print("\nallocated over the steady period and still held (tracemalloc), object growth:")
        for name, m in result["memtrace"].items():
            print(f"  {name}: {m['traced_kib']} KiB in {m['traced_blocks']} blocks")
            for line in m["top"][:5]:
                print(f"      {line}")
            print(f"      objects: {m['objects_grown']}")
    print(f"\nlogs: {result['workdir']}")
    return all(ok is not False for _n, _f, _t, ok in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="load phase (≤ 10)")
    parser.add_argument("--sockets", type=int, default=2000, help="trips held by websockets")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--plan-rate", type=float, default=2.0, help="plans per second")
    parser.add_argument("--report-rate", type=float, default=5.0, help="reports per second")
    parser.add_argument("--trip-rate", type=float, default=0.5, help="trips started per second")
    parser.add_argument("--contributors", type=int, default=300)
    parser.add_argument("--itineraries", type=int, default=12, help="distinct car-share plans")
    parser.add_argument("--writer-ttl", type=float, default=5.0, help="writer lock TTL (s)")
    parser.add_argument(
        "--redis-down-s",
        type=float,
        default=0.5,
        help="seconds between killing and starting redis-server again: a restart, as a "
        "supervisor does it (the store rides through 2 s of refused connections; a longer "
        "outage answers 503, see tests/crowdsource/test_durability.py)",
    )
    parser.add_argument("--date", default="2019-05-15", help="the city's default date")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="diagnosis: trace each server process's allocations over the steady period "
        "(tracemalloc, object counts: benchmarks/memtrace); inflates the RSS figures",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not 0 < args.minutes <= 10:
        parser.error("--minutes must be in (0, 10]")
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    log(f"loading (or building) {CITY} into {folder / 'cache'} (not part of the bound)")
    prepare_city(folder)
    began = time.monotonic()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it

    def overtime(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"bench_soak: over its {HARD_BOUND_S:.0f} s bound")

    signal.signal(signal.SIGALRM, overtime)
    signal.alarm(int(HARD_BOUND_S) + 30)  # the processes are still stopped on the way out
    result = asyncio.run(run(args, folder, began))
    signal.alarm(0)
    result["wall_s"] = round(time.monotonic() - began, 1)
    ok = print_result(result)
    print(f"whole command: {result['wall_s']:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
