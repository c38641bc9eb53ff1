"""A loopback HTTP server for GBFS documents (replays and simulators), on
:class:`realtime.feed_server.FeedServer`: every document carries an ETag."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from realtime.feed_server import FeedServer

Provider = Callable[[str, str], dict[str, Any] | None]  # (feed name, base URL) → document


class GbfsServer(FeedServer):
    """Serves ``/<name>.json`` from a provider on 127.0.0.1 in a background thread."""

    def __init__(self, provider: Provider, host: str = "127.0.0.1", port: int = 0) -> None:
        def resolve(path: str) -> tuple[bytes, str] | None:
            doc = provider(path.strip("/").removesuffix(".json"), self.base_url)
            if doc is None:
                return None
            return json.dumps(doc, separators=(",", ":")).encode(), "application/json"

        super().__init__(resolve, host, port)

    @property
    def discovery_url(self) -> str:
        """URL of the served ``gbfs.json``."""
        return f"{self.base_url}/gbfs.json"


def discovery(base_url: str, names: list[str], ttl: int, last_updated: int) -> dict[str, Any]:
    """A GBFS 2.3 ``gbfs.json`` listing ``names`` under ``base_url``."""
    return {
        "last_updated": last_updated,
        "ttl": ttl,
        "version": "2.3",
        "data": {"en": {"feeds": [{"name": n, "url": f"{base_url}/{n}.json"} for n in names]}},
    }
