"""Real ``correspondance serve`` processes for the perimeter tests (issue 11).

The perimeter is mostly uvicorn's options (trusted proxies, header and websocket limits),
so these tests run the command line itself, as a deployment does, never an in-process
``uvicorn.Config`` whose defaults differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from processes import free_port

from correspondance.settings import REPO_ROOT

CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
PASSWORD = "correct horse battery staple"


@dataclass
class Served:
    """A running ``correspondance serve``."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    operators_file: Path
    log: Path

    def rss_kib(self) -> int:
        """Resident memory of the server process, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextmanager
def serve(tmp_path: Path, *, workers: int = 1, **env: str) -> Iterator[Served]:
    """``correspondance serve`` of Porto Alegre, embedded (no Redis) unless ``REDIS_URL``
    is given, without live feeds, with its operators and secret files under ``tmp_path``."""
    port = free_port()
    operators_file = tmp_path / f"operators-{port}.json"
    log = tmp_path / f"serve-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    full_env.pop("REDIS_URL", None)
    full_env.pop("FORWARDED_ALLOW_IPS", None)
    full_env.update(
        {
            "CORRESPONDANCE_CACHE_DIR": str(CACHE_DIR),
            "CORRESPONDANCE_LIVE_FEEDS": "false",
            "CORRESPONDANCE_OPERATORS_FILE": str(operators_file),
            "CORRESPONDANCE_SECRET_FILE": str(tmp_path / f"secret-{port}"),
            **env,
        }
    )
    command = [sys.executable, "-m", "api.cli", "serve", "--city", "porto-alegre"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded machine: the base loads in each process
        while True:
            try:
                if httpx.get(f"{url}/api/v1/cities", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Served(url=url, port=port, process=process, operators_file=operators_file, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def add_operator(served: Served, username: str) -> None:
    """Create an operator account through the command line, as an administrator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env.pop("REDIS_URL", None)
    env["CORRESPONDANCE_OPERATORS_FILE"] = str(served.operators_file)
    env["CORRESPONDANCE_OPERATOR_PASSWORD"] = PASSWORD
    subprocess.run(
        [sys.executable, "-m", "api.cli", "operator", "add", "--username", username],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
