"""A deterministic GBFS 2.3 simulator for systems with no real feed (car-share anywhere,
bike-share in Porto Alegre). Every document says it is simulated.

Stations sit on real street nodes chosen with a seeded generator. Availability follows a
smooth daily-looking wave per station plus a small seeded jitter, a pure function of
``(seed, station, tick)``: the same seed and clock give the same feed, byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from correspondance.cities import SimulatorConfig
from realtime.gbfs_server import discovery

CAPACITY = {"bicycle": (10, 30), "scooter": (8, 20), "car": (4, 12)}
VEHICLE_TYPE: dict[str, dict[str, Any]] = {
    "bicycle": {"form_factor": "bicycle", "propulsion_type": "human"},
    "scooter": {"form_factor": "scooter", "propulsion_type": "electric", "max_range_meters": 25000},
    "car": {"form_factor": "car", "propulsion_type": "combustion", "max_range_meters": 500000},
}


def _jitter(seed: int, station: int, tick: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{station}:{tick}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") % 3 - 1


@dataclass
class GbfsSimulator:
    """Simulated stations and free-floating vehicles placed on ``points`` (lat, lon)."""

    system_id: str
    name: str
    config: SimulatorConfig
    points: np.ndarray  # (n, 2) candidate street positions
    timezone: str = "UTC"
    clock: Callable[[], float] = time.time
    # the simulated situation frozen at this Unix time (tests, demos); feeds stay fresh
    frozen_at: float | None = None

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.config.seed)
        n = min(self.config.stations, len(self.points))
        picks = rng.choice(len(self.points), size=n, replace=False) if n else np.zeros(0, int)
        self.stations = self.points[picks]
        lo, hi = CAPACITY[self.config.form_factor]
        self.capacity = rng.integers(lo, hi + 1, size=n)
        self.phase = rng.random(n)
        self.vehicle_type_id = f"{self.config.form_factor}-sim"

    def tick(self) -> int:
        """The simulation step in force now (or at ``frozen_at``)."""
        at = self.frozen_at if self.frozen_at is not None else self.clock()
        return int(at // self.config.tick_s)

    def available(self, tick: int) -> np.ndarray:
        """Vehicles at each station at ``tick``: between 0 and capacity."""
        wave = 0.5 + 0.45 * np.sin(2 * math.pi * (tick / 240.0 + self.phase))
        counts = np.round(self.capacity * wave).astype(int)
        jitter = np.array(
            [_jitter(self.config.seed, i, tick) for i in range(len(counts))], dtype=int
        )
        clipped: np.ndarray = np.clip(counts + jitter, 0, self.capacity)
        return clipped

    def vehicles(self, tick: int) -> list[dict[str, Any]]:
        """Free-floating vehicles, re-placed every ten ticks."""
        rng = np.random.default_rng([self.config.seed, tick // 10])
        k = min(self.config.vehicles, len(self.points))
        picks: list[int] = rng.choice(len(self.points), size=k, replace=False).tolist() if k else []
        return [
            {
                "bike_id": f"sim-{self.system_id}-{j}",
                "lat": round(float(self.points[p][0]), 6),
                "lon": round(float(self.points[p][1]), 6),
                "is_reserved": False,
                "is_disabled": False,
                "vehicle_type_id": self.vehicle_type_id,
                "last_reported": int(self.clock() // self.config.tick_s * self.config.tick_s),
            }
            for j, p in enumerate(picks)
        ]

    def document(self, feed: str, base_url: str) -> dict[str, Any] | None:
        """The GBFS 2.3 document named ``feed``, or None."""
        tick = self.tick()
        now = int(self.clock() // self.config.tick_s * self.config.tick_s)  # a fresh feed
        ttl = int(self.config.tick_s)

        def wrap(data: dict[str, Any], ttl_s: int = ttl) -> dict[str, Any]:
            return {"last_updated": now, "ttl": ttl_s, "version": "2.3", "data": data}

        names = ["system_information", "vehicle_types", "station_information", "station_status"]
        if self.config.vehicles:
            names.append("free_bike_status")
        if feed == "gbfs":
            return discovery(base_url, names, ttl, now)
        if feed == "system_information":
            return wrap(
                {
                    "system_id": self.system_id,
                    "language": "en",
                    "name": f"{self.name} (simulated)",
                    "timezone": self.timezone,
                    "operator": "Correspondance simulator — not a real service",
                },
                3600,
            )
        if feed == "vehicle_types":
            return wrap(
                {
                    "vehicle_types": [
                        {
                            "vehicle_type_id": self.vehicle_type_id,
                            **VEHICLE_TYPE[self.config.form_factor],
                            "name": f"Simulated {self.config.form_factor}",
                        }
                    ]
                },
                3600,
            )
        if feed == "station_information":
            return wrap(
                {
                    "stations": [
                        {
                            "station_id": f"s{i}",
                            "name": f"Simulated station {i + 1}",
                            "lat": round(float(lat), 6),
                            "lon": round(float(lon), 6),
                            "capacity": int(self.capacity[i]),
                        }
                        for i, (lat, lon) in enumerate(self.stations)
                    ]
                },
                3600,
            )
        if feed == "station_status":
            avail = self.available(tick)
            return wrap(
                {
                    "stations": [
                        {
                            "station_id": f"s{i}",
                            "num_bikes_available": int(avail[i]),
                            "num_docks_available": int(self.capacity[i] - avail[i]),
                            "vehicle_types_available": [
                                {"vehicle_type_id": self.vehicle_type_id, "count": int(avail[i])}
                            ],
                            "is_installed": True,
                            "is_renting": True,
                            "is_returning": True,
                            "last_reported": now,
                        }
                        for i in range(len(self.stations))
                    ]
                }
            )
        if feed == "free_bike_status" and self.config.vehicles:
            return wrap({"bikes": self.vehicles(tick)})
        return None
