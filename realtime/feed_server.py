"""A small loopback HTTP server for simulated and replayed feeds (GBFS, GTFS-RT).

Simulators and replays are *served*, not injected: the normal pollers fetch them over
HTTP, so they exercise exactly the ingestion path of a real feed, conditional requests
included: every document carries an ETag (its SHA-1), and a request that names it gets 304.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Resolver = Callable[[str], tuple[bytes, str] | None]
"""Request path (without query) → (body, content type), or ``None`` for a 404."""


class FeedServer:
    """Serves what ``resolve`` gives each path on 127.0.0.1, in a background thread.

    Parameters
    ----------
    resolve : callable
        Request path → ``(body, content type)``, or ``None`` when there is no such feed.
    host : str, default "127.0.0.1"
        Address to bind.
    port : int, default 0
        Port to bind (0: a free one).
    """

    def __init__(self, resolve: Resolver, host: str = "127.0.0.1", port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                found = resolve(path)
                if found is None:
                    self.send_error(404, f"no feed at {path}")
                    return
                body, content_type = found
                etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the pollers record every outcome in feed health

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Start serving in the background thread (returns self)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
