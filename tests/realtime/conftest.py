"""Fixtures for live-feed tests: a programmable loopback HTTP feed server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Behaviour:
    """What the server answers for one path: a document, or a fault."""

    doc: Any = None
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None  # sent as is (invalid JSON, truncated bodies)


@dataclass
class FeedServer:
    """A loopback server whose answers tests change between polls."""

    routes: dict[str, Behaviour] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    base_url: str = ""

    def set(self, name: str, doc: Any = None, **kwargs: Any) -> None:
        self.routes[name] = Behaviour(doc=doc, **kwargs)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server_state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.strip("/").removesuffix(".json")
            server_state.hits[name] = server_state.hits.get(name, 0) + 1
            behaviour = server_state.routes.get(name)
            if behaviour is None:
                self.send_error(404)
                return
            if behaviour.delay_s:
                time.sleep(behaviour.delay_s)
            body = (
                behaviour.raw if behaviour.raw is not None else json.dumps(behaviour.doc).encode()
            )
            self.send_response(behaviour.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # the client may have given up already (timeout tests)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    server_state.base_url = f"http://{host!s}:{port}"
    yield server_state
    server.shutdown()
    server.server_close()
