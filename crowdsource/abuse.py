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

from correspondance.geo import METRES_PER_DEG_LAT, distance_m
from correspondance.store import StateStore
from crowdsource.errors import RateLimitedError, ReportRejectedError
from crowdsource.models import Report
from crowdsource.tokens import address_key


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

    # -- keys and verdicts, shared with crowdsource.admission ------------------------------

    def _rules(self) -> tuple[tuple[str, float, int], ...]:
        """(what, window s, limit) of the five counters, in the order they are checked."""
        limits = self.limits
        return (
            ("network", 60, limits.address_per_minute),
            ("network", 3600, limits.address_per_hour),
            ("token", 60, limits.token_per_minute),
            ("token", 3600, limits.token_per_hour),
            ("token in this area", limits.area_window_s, limits.token_per_area),
        )

    def network_keys(self, client_address: str) -> tuple[str, str]:
        """The network's minute and hour counters (keyed by a hash of the network)."""
        network = address_key(client_address, self.secret)
        return f"cs:addr:60:{network}", f"cs:addr:3600:{network}"

    def token_keys(self, contributor: str) -> tuple[str, str]:
        """The token's minute and hour counters."""
        return f"cs:tok:60:{contributor}", f"cs:tok:3600:{contributor}"

    def area_key(self, contributor: str, lat: float, lon: float) -> str:
        """The token's counter in the grid cell of ``lat, lon``."""
        cy, cx = self._cell(lat, lon)
        return f"cs:{self.city}:area:{contributor}:{cy}:{cx}"

    def last_key(self, contributor: str) -> str:
        """Where the token's last position and time are kept."""
        return f"cs:{self.city}:last:{contributor}"

    _last_key = last_key

    @staticmethod
    def position_value(report: Report) -> bytes:
        """What is remembered of a report for the next sequence check."""
        return f"{report.lat:.6f},{report.lon:.6f},{report.observed_at:.3f}".encode()

    def limited(self, rule: int, remaining_s: float | None) -> RateLimitedError:
        """The refusal of counter ``rule`` (1-5, in :meth:`_rules` order).

        Parameters
        ----------
        rule : int
            Which counter is over its limit.
        remaining_s : float or None
            Time left in its window (``None``: unknown, the whole window).
        """
        what, window_s, limit = self._rules()[rule - 1]
        return RateLimitedError(
            f"too many reports from this {what} (at most {limit} per "
            f"{window_s:.0f} s); try again later",
            retry_after_s=math.ceil(remaining_s if remaining_s is not None else window_s),
        )

    @staticmethod
    def implausible(gap_m: float, elapsed_s: float) -> ReportRejectedError:
        """The refusal of a report too far from the token's previous one."""
        return ReportRejectedError(
            f"implausible sequence: {gap_m:.0f} m from this token's previous report "
            f"{elapsed_s:.0f} s apart",
            code="implausible_sequence",
        )

    async def _count(self, key: str, rule: int) -> None:
        _, window_s, limit = self._rules()[rule - 1]
        count = await self.store.incr(key, ttl_s=window_s)
        if count > limit:
            raise self.limited(rule, await self.store.ttl(key))

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        size = self.limits.area_cell_m
        metres_per_deg_lon = METRES_PER_DEG_LAT * math.cos(math.radians(lat))
        return (
            math.floor(lat * METRES_PER_DEG_LAT / size),
            math.floor(lon * metres_per_deg_lon / size),
        )

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
        minute, hour = self.network_keys(client_address)
        # the per-network counters first, on their own: a flood of fresh tokens from one
        # place stops there before touching any per-token state
        await asyncio.gather(self._count(minute, 1), self._count(hour, 2))
        token_minute, token_hour = self.token_keys(contributor)
        await asyncio.gather(
            self._count(token_minute, 3),
            self._count(token_hour, 4),
            self._count(self.area_key(contributor, report.lat, report.lon), 5),
        )
        await self._check_sequence(contributor, report)

    async def _check_sequence(self, contributor: str, report: Report) -> None:
        key = self.last_key(contributor)
        raw = await self.store.get(key)
        if raw is not None:
            lat, lon, at = (float(v) for v in raw.decode().split(","))
            elapsed = abs(report.observed_at - at)
            reach = self.limits.max_speed_m_s * elapsed + self.limits.position_slack_m
            gap = distance_m(lat, lon, report.lat, report.lon)
            if gap > reach:
                raise self.implausible(gap, elapsed)
        await self.store.set(key, self.position_value(report), self.limits.sequence_memory_s)

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
            self.last_key(contributor),
            *self.token_keys(contributor),
            *await self.store.scan_keys(f"cs:{self.city}:area:{contributor}:*"),
        ]
        return await self.store.delete(*keys)
