"""Replays a recorded GBFS day (e.g. 58 real Oslo Bysykkel snapshots) as a live feed.

The recording is a folder: ``station_information.json`` and ``station_status/<epoch>.json``.
A virtual clock runs from the first snapshot at ``speed`` × real time; the served
``station_status`` is the latest snapshot at or before the virtual now.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeds.errors import FeedError
from realtime.gbfs_server import discovery


@dataclass
class VirtualClock:
    """Recorded time running at ``speed`` × real time from ``start``."""

    start: float
    speed: float = 1.0
    real: Callable[[], float] = time.monotonic
    _real_start: float = field(init=False)

    def __post_init__(self) -> None:
        self._real_start = self.real()

    def __call__(self) -> float:
        return self.start + (self.real() - self._real_start) * self.speed


class Recording:
    """A folder of GBFS snapshots."""

    def __init__(self, folder: Path) -> None:
        info = folder / "station_information.json"
        if not info.is_file():
            raise FeedError(f"{folder}: a GBFS recording needs station_information.json")
        self.information: dict[str, Any] = json.loads(info.read_text(encoding="utf-8"))
        snapshots = sorted(
            (int(p.stem), p) for p in (folder / "station_status").glob("*.json") if p.stem.isdigit()
        )
        if not snapshots:
            raise FeedError(f"{folder}: no station_status/<epoch>.json snapshots")
        self.epochs = [e for e, _ in snapshots]
        self._paths = [p for _, p in snapshots]
        self._cache: dict[int, dict[str, Any]] = {}

    def status_at(self, t: float) -> dict[str, Any]:
        """The snapshot in force at recorded time ``t`` (the first one before it starts)."""
        i = max(0, bisect.bisect_right(self.epochs, t) - 1)
        if i not in self._cache:
            self._cache[i] = json.loads(self._paths[i].read_text(encoding="utf-8"))
        return self._cache[i]

    def provider(
        self, clock: Callable[[], float], name: str = "Replay"
    ) -> Callable[[str, str], dict[str, Any] | None]:
        """A :class:`~realtime.gbfs_server.GbfsServer` provider driven by ``clock``."""

        def provide(feed: str, base_url: str) -> dict[str, Any] | None:
            now = clock()
            if feed == "gbfs":
                return discovery(
                    base_url,
                    ["system_information", "station_information", "station_status"],
                    10,
                    int(now),
                )
            if feed == "system_information":
                return {
                    "last_updated": int(now),
                    "ttl": 3600,
                    "version": "2.3",
                    "data": {
                        "system_id": name,
                        "language": "en",
                        "name": f"{name} (replay)",
                        "timezone": "UTC",
                    },
                }
            if feed == "station_information":
                return self.information
            if feed == "station_status":
                return self.status_at(now)
            return None

        return provide
