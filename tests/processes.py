"""Real processes for deployment-shape tests: a private redis-server, and Correspondance
processes (``serve`` of any role, ``worker``) started from a :class:`Settings`.

Nothing here fakes a role: each process is ``python -m api.cli …`` with its settings in the
environment, exactly as docker-compose.yml runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from pydantic import BaseModel, SecretStr

from correspondance.settings import REPO_ROOT, Settings

SHARED_REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def delete_prefix(prefix: str, url: str = SHARED_REDIS_URL) -> None:
    """Delete every key under ``prefix`` (a test's private prefix) on the Redis at ``url``."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def wait_started(server: Any, thread: threading.Thread, timeout_s: float = 120.0) -> None:
    """Wait until ``server`` (a uvicorn.Server run by ``thread``) has started."""
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.05)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> float:
    """Poll ``predicate`` until it is true; the seconds it took. AssertionError on time-out."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass
class RedisServer:
    """A redis-server child on a free loopback port; it can be killed, frozen, restarted.

    With ``persistent`` it runs as docker-compose.yml does (AOF, fsync always), so what it
    acknowledged survives a kill and a restart on the same folder.
    """

    workdir: Path
    persistent: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client (for test assertions)."""
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `apt-get install redis-server`")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + (persistence if self.persistent else ["--appendonly", "no"])
            + ["--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.2)
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def freeze(self) -> None:
        """SIGSTOP: the server stops answering (an outage), keeping its state."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def redis_server(workdir: Path, persistent: bool = False) -> Iterator[RedisServer]:
    """A running private redis-server, killed afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir, persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` redis-server children on loopback (no replicas).

    Each node gets two free ports (clients, and the cluster bus via ``cluster-port``), its
    own folder, and the slots are assigned with ``redis-cli --cluster create``.
    """

    workdir: Path
    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """What ``REDIS_URL`` says for a cluster: any one node, the others are discovered."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def client(self) -> redis.RedisCluster:
        """A synchronous cluster client (for test assertions)."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server is not installed: run `apt-get install redis-server`")
        for i in range(self.masters):
            folder = self.workdir / f"node-{i}"
            folder.mkdir(parents=True, exist_ok=True)
            node = RedisServer(folder)
            self.nodes.append(node)
            options = {
                "port": node.port,
                "bind": "127.0.0.1",
                "save": "",
                "appendonly": "no",
                "dir": folder,
                "logfile": folder / "redis.log",
                "cluster-enabled": "yes",
                "cluster-port": free_port(),  # the bus (port + 10000 may be taken or > 65535)
                "cluster-config-file": folder / "nodes.conf",
                "cluster-node-timeout": 2000,
            }
            argv = [binary]
            for name, value in options.items():
                argv += [f"--{name}", str(value)]
            self.processes.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for node, process in zip(self.nodes, self.processes, strict=True):
            wait_until(lambda n=node, p=process: _answers(n.port, p), 10, f"node {node.port}")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )

        def ready() -> bool:
            for port in self.ports:
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info:
                        return False
                finally:
                    client.close()
            return True

        wait_until(ready, 20, "the cluster to agree on its slots")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.processes.clear()


def _answers(port: int, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"redis-server on port {port} died")
    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[RedisCluster]:
    """A running Redis Cluster of ``masters`` nodes on loopback, killed afterwards."""
    cluster = RedisCluster(workdir, masters)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CORRESPONDANCE_") and k != "REDIS_URL"
    }
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, dict):
            text = json.dumps(value)
        elif isinstance(value, BaseModel):  # a settings group, e.g. limits
            text = value.model_dump_json()
        else:
            text = str(value)
        env["REDIS_URL" if name == "redis_url" else f"CORRESPONDANCE_{name.upper()}"] = text
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """A Correspondance child process and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _spawn(args: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            cwd=REPO_ROOT,
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def serve(
    settings: Settings, log: Path, *extra: str, timeout_s: float = 240.0
) -> Iterator[Process]:
    """``correspondance serve`` on a free port, once its health answers (within
    ``timeout_s``)."""
    port = free_port()
    child = Process(
        _spawn(["serve", "--host", "127.0.0.1", "--port", str(port), *extra], settings, log), log
    )
    child.url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if child.process.poll() is not None:
                raise RuntimeError(f"server process died:\n{child.tail()}")
            try:
                return httpx.get(f"{child.url}/api/v1/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout_s, "server start")
        yield child
    finally:
        child.stop()


@contextmanager
def worker(settings: Settings, log: Path, timeout_s: float = 240.0) -> Iterator[Process]:
    """``correspondance worker``, once it says it runs (within ``timeout_s``)."""
    child = Process(_spawn(["worker"], settings, log), log)
    try:

        def running() -> bool:
            if child.process.poll() is not None:
                raise RuntimeError(f"worker process died:\n{child.tail()}")
            return "running for" in child.tail(100_000)

        wait_until(running, timeout_s, "worker start")
        yield child
    finally:
        child.stop()
