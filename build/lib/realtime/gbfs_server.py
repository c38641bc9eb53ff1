"""A small loopback HTTP server for GBFS documents (replays and simulators).

Replays and simulators are *served*, not injected: the normal poller fetches them over
HTTP, so they exercise exactly the ingestion path of a real feed (conditional requests
included: every document carries an ETag).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Provider = Callable[[str, str], dict[str, Any] | None]  # (feed name, base URL) → document


class GbfsServer:
    """Serves ``/<name>.json`` from a provider on 127.0.0.1 in a background thread."""

    def __init__(self, provider: Provider, host: str = "127.0.0.1", port: int = 0) -> None:
        self._provider = provider
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.split("?", 1)[0].strip("/").removesuffix(".json")
                doc = outer._provider(name, outer.base_url)
                if doc is None:
                    self.send_error(404, f"no feed {name!r}")
                    return
                body = json.dumps(doc, separators=(",", ":")).encode()
                etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the poller records every outcome in feed health

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def discovery_url(self) -> str:
        """URL of the served ``gbfs.json``."""
        return f"{self.base_url}/gbfs.json"

    def start(self) -> GbfsServer:
        """Start serving (returns self)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()


def discovery(base_url: str, names: list[str], ttl: int, last_updated: int) -> dict[str, Any]:
    """A GBFS 2.3 ``gbfs.json`` listing ``names`` under ``base_url``."""
    return {
        "last_updated": last_updated,
        "ttl": ttl,
        "version": "2.3",
        "data": {"en": {"feeds": [{"name": n, "url": f"{base_url}/{n}.json"} for n in names]}},
    }
