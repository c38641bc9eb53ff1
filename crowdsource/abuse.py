"""Abuse rules, shared by every API worker through the store.

* Rate limits per token and per client network (fixed windows of a minute and an hour,
  counted with ``incr(key, ttl_s=window)``: two window sizes make a cheap sliding-ish
  limit). Every attempt counts, refused ones too, so a flood stays refused.
* A cap per token per area (a ~1 km grid cell) per 10 minutes: one device cannot paint a
  neighbourhood.
* Implausible sequences: one token reporting from two places farther apart than
  ``max_speed_m_s`` times the time between them (plus GPS slack) is refused.

The client address is turned into a keyed hash of its network (:func:`address_key`) before
it becomes part of a key, and every counter expires with its window.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from correspondance.store import StateStore
from crowdsource.errors import RateLimitedError, ReportRejectedError
from crowdsource.models import Report
from crowdsource.tokens import address_key
from routing.streets import METRES_PER_DEG_LAT


@dataclass(frozen=True)
class AbuseLimits:
    """Defaults of the abuse rules (all counts are per window).

    Attributes
    ----------
    token_per_minute, token_per_hour : int
        Reports one contributor token may send.
    address_per_minute, address_per_hour : int
        Reports one client network (IPv4 address, IPv6 /64) may send, all tokens together.
    area_cell_m : float
        Side of the grid cells of the per-area cap.
    token_per_area : int
        Reports one token may send about one cell per ``area_window_s``.
    area_window_s : float
        Window of the per-area cap.
    max_speed_m_s : float
        Fastest plausible travel between two reports of one token (50 m/s = 180 km/h).
    position_slack_m : float
        GPS error allowed on top of ``max_speed_m_s`` × elapsed time.
    sequence_memory_s : float
        How long a token's last position is kept to check the next one.
    """

    token_per_minute: int = 12
    token_per_hour: int = 120
    address_per_minute: int = 60
    address_per_hour: int = 600
    area_cell_m: float = 1000.0
    token_per_area: int = 6
    area_window_s: float = 600.0
    max_speed_m_s: float = 50.0
    position_slack_m: float = 250.0
    sequence_memory_s: float = 600.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


class AbuseGuard:
    """Store-backed abuse checks, run for every report before it is stored.

    Parameters
    ----------
    store : StateStore
        The shared store (Redis in production: limits hold across workers).
    limits : AbuseLimits
        The rules' numbers.
    secret : bytes
        Server secret for hashing client addresses.
    city : str
        City id (area and sequence keys are per city; rate limits are per deployment).
    """

    def __init__(self, store: StateStore, limits: AbuseLimits, *, secret: bytes, city: str) -> None:
        self.store = store
        self.limits = limits
        self.secret = secret
        self.city = city

    async def _count(self, key: str, window_s: float, limit: int, what: str) -> None:
        count = await self.store.incr(key, ttl_s=window_s)
        if count > limit:
            remaining = await self.store.ttl(key)
            raise RateLimitedError(
                f"too many reports from this {what} (at most {limit} per "
                f"{window_s:.0f} s); try again later",
                retry_after_s=math.ceil(remaining if remaining is not None else window_s),
            )

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        size = self.limits.area_cell_m
        metres_per_deg_lon = METRES_PER_DEG_LAT * math.cos(math.radians(lat))
        return (
            math.floor(lat * METRES_PER_DEG_LAT / size),
            math.floor(lon * metres_per_deg_lon / size),
        )

    def _last_key(self, contributor: str) -> str:
        return f"cs:{self.city}:last:{contributor}"

    async def check(
        self, contributor: str, client_address: str, report: Report, now: float
    ) -> None:
        """Apply every rule to one report; return quietly if it may be stored.

        Parameters
        ----------
        contributor : str
            Keyed hash of the token.
        client_address : str
            The client's IP address (hashed here; never stored as such).
        report : Report
            The report (its position and ``observed_at`` are checked).
        now : float
            Unix seconds.

        Raises
        ------
        RateLimitedError
            If a per-network, per-token or per-area limit is exceeded (``retry_after_s`` is
            when that window ends).
        ReportRejectedError
            ``implausible_sequence`` if the token's previous report is too far away for the
            time between them.
        """
        limits = self.limits
        network = address_key(client_address, self.secret)
        # per network first: a flood of fresh tokens from one place stops here
        # the per-network counters first, on their own: a flood of fresh tokens from one
        # place stops there before touching any per-token state
        await asyncio.gather(
            self._count(f"cs:addr:60:{network}", 60, limits.address_per_minute, "network"),
            self._count(f"cs:addr:3600:{network}", 3600, limits.address_per_hour, "network"),
        )
        cy, cx = self._cell(report.lat, report.lon)
        await asyncio.gather(
            self._count(f"cs:tok:60:{contributor}", 60, limits.token_per_minute, "token"),
            self._count(f"cs:tok:3600:{contributor}", 3600, limits.token_per_hour, "token"),
            self._count(
                f"cs:{self.city}:area:{contributor}:{cy}:{cx}",
                limits.area_window_s,
                limits.token_per_area,
                "token in this area",
            ),
        )
        await self._check_sequence(contributor, report)

    async def _check_sequence(self, contributor: str, report: Report) -> None:
        key = self._last_key(contributor)
        raw = await self.store.get(key)
        if raw is not None:
            lat, lon, at = (float(v) for v in raw.decode().split(","))
            elapsed = abs(report.observed_at - at)
            reach = self.limits.max_speed_m_s * elapsed + self.limits.position_slack_m
            gap = distance_m(lat, lon, report.lat, report.lon)
            if gap > reach:
                raise ReportRejectedError(
                    f"implausible sequence: {gap:.0f} m from this token's previous report "
                    f"{elapsed:.0f} s apart",
                    code="implausible_sequence",
                )
        value = f"{report.lat:.6f},{report.lon:.6f},{report.observed_at:.3f}".encode()
        await self.store.set(key, value, self.limits.sequence_memory_s)

    async def forget(self, contributor: str) -> int:
        """Delete every abuse record linked to a contributor (self-data deletion).

        Parameters
        ----------
        contributor : str
            Keyed hash of the token.

        Returns
        -------
        int
            Number of keys deleted.
        """
        keys = [
            self._last_key(contributor),
            f"cs:tok:60:{contributor}",
            f"cs:tok:3600:{contributor}",
            *await self.store.scan_keys(f"cs:{self.city}:area:{contributor}:*"),
        ]
        return await self.store.delete(*keys)
