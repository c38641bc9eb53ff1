"""Fixtures for the browser tests: the real server in a subprocess, and headless Debian Chromium.

The server is started as ``python -m api.cli serve --city porto-alegre`` on a free loopback
port and polled on ``/api/v1/health`` (first start may build the city's graph: up to 180 s).
``CORRESPONDANCE_CACHE_DIR`` and the rest of the environment are inherited.

Set ``CORRESPONDANCE_BROWSER_BASE_URL=http://127.0.0.1:PORT`` to run these tests against a
server that is already running instead of starting one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# No GPU here: WebGL (the MapLibre base map) runs on SwiftShader, asked for explicitly so
# Chromium neither warns about falling back to it nor reads every frame back to a software
# compositor (as --disable-gpu does, with a console warning per frame).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 180.0
# A phone-sized viewport: the page is mobile-first.
VIEWPORT = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _health_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/health", timeout=2) as resp:
            body = json.loads(resp.read().decode("utf-8"))
            return resp.status == 200 and body.get("status") == "ok"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@contextmanager
def _server_process(env: dict[str, str], prefix: str) -> Iterator[str]:
    """A ``correspondance serve`` process for Porto Alegre on a free port, until healthy."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "api.cli", "serve", "--city", "porto-alegre"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _health_ok(base):
                if proc.poll() is not None:
                    pytest.fail(
                        f"server exited with code {proc.returncode} before becoming healthy:\n"
                        f"{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"server not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{_tail(log_path)}"
                    )
                time.sleep(0.5)
            yield base
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture(scope="package")
def live_server() -> Iterator[str]:
    """Base URL (no trailing slash) of a running Correspondance server for Porto Alegre."""
    external = os.environ.get("CORRESPONDANCE_BROWSER_BASE_URL")
    if external:
        base = external.rstrip("/")
        if not _health_ok(base):
            pytest.fail(f"CORRESPONDANCE_BROWSER_BASE_URL={base} does not answer /api/v1/health")
        yield base
        return

    with _server_process(os.environ.copy(), "correspondance-browser-") as base:
        yield base


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never ``playwright install``)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


_MAPLIBRE_CANCELS = re.compile(r"/api/v1/cities/[^/]+/tiles/\d+/\d+/\d+\.mvt(\?|$)")


class ConsoleProblems:
    """Console errors/warnings and uncaught page errors seen by one page."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            loc = msg.location or {}
            self.messages.append(f"console.{msg.type}: {msg.text} ({loc.get('url', '')})")

    def on_pageerror(self, exc: Any) -> None:
        self.messages.append(f"pageerror: {exc}")

    def on_requestfailed(self, request: Any) -> None:
        if request.failure == "net::ERR_ABORTED" and _MAPLIBRE_CANCELS.search(request.url):
            return  # MapLibre aborts the tiles a quick move took out of view: not a fault
        self.messages.append(f"requestfailed: {request.method} {request.url} {request.failure}")

    def assert_none(self) -> None:
        assert self.messages == [], "browser console problems:\n" + "\n".join(self.messages)


@contextmanager
def _phone_page(chromium: Any, base_url: str, viewport: dict[str, int]) -> Iterator[Any]:
    """A fresh page of its own context; ``page.console_problems`` collects console problems."""
    context = chromium.new_context(viewport=viewport, device_scale_factor=1, base_url=base_url)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    problems = ConsoleProblems()
    pg.on("console", problems.on_console)
    pg.on("pageerror", problems.on_pageerror)
    pg.on("requestfailed", problems.on_requestfailed)
    pg.console_problems = problems
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def page(chromium: Any, live_server: str) -> Iterator[Any]:
    """A fresh phone-sized page; ``page.console_problems`` collects console errors/warnings."""
    with _phone_page(chromium, live_server, VIEWPORT) as pg:
        yield pg


# --- Live trips (issue 6): a second server with the demo mode on --------------------------------


def _demo_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/demo", timeout=5) as resp:
            status: int = resp.status
            return status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="package")
def demo_server() -> Iterator[str]:
    """Base URL of a server started with ``CORRESPONDANCE_DEMO=true`` (``POST
    /api/v1/trips/{id}/demo`` closes the road ahead for that trip alone).

    One server for every demo test: a demo jam is private to its trip, so nothing leaks from
    one test into the next one's plan (which these tests also show). With
    ``CORRESPONDANCE_BROWSER_BASE_URL`` set, that server is used and must have the demo mode
    on. ``REDIS_URL`` is dropped: this server keeps its state in-process, alone.
    """
    external = os.environ.get("CORRESPONDANCE_BROWSER_BASE_URL")
    if external:
        base = external.rstrip("/")
        if not _demo_ok(base):
            pytest.fail(f"{base} has no demo mode (GET /api/v1/demo): set CORRESPONDANCE_DEMO=true")
        yield base
        return

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CORRESPONDANCE_DEMO"] = "true"
    with _server_process(env, "correspondance-demo-") as base:
        yield base


@pytest.fixture
def demo_page(chromium: Any, demo_server: str) -> Iterator[Any]:
    """Like ``page``, on the demo server, at the narrowest common phone width (360 px)."""
    with _phone_page(chromium, demo_server, {"width": 360, "height": 740}) as pg:
        yield pg
