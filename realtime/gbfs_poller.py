"""Polls one GBFS system and hands each good update to the single writer.

Every outcome is recorded in the feed's health. On any fault — timeout, refused
connection, HTTP 5xx, invalid JSON, schema-invalid documents, a ``last_updated`` in the
future, a feed that suddenly lists zero stations — the last good state stays in use, the
feed is marked degraded with the reason, and polling goes on. Nothing here raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from correspondance.cities import FeedSource
from correspondance.errors import CorrespondanceError
from feeds.gbfs import (
    StationInfo,
    parse_geofencing_zones,
    parse_station_information,
    parse_station_status,
    parse_vehicle_status,
    parse_vehicle_types,
)
from realtime.fetch import Fetcher
from realtime.health import FeedHealth, HealthBook
from realtime.writer import LiveWriter
from routing.overlay import GeoZone, SharedStation, SharedSystem, SharedVehicle

log = logging.getLogger("correspondance.realtime")
FUTURE_TOLERANCE_S = 300.0
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 300.0
STALE_AFTER_S = 3600.0


class GbfsRejectedError(CorrespondanceError, ValueError):
    """A GBFS response that must not replace the last good state."""

    code = "gbfs_rejected"


FORM_FACTORS = {
    "bicycle": "bicycle",
    "cargo_bicycle": "bicycle",
    "car": "car",
    "scooter": "scooter",
    "scooter_standing": "scooter",
    "scooter_seated": "scooter",
    "moped": "scooter",
}


def routing_form_factor(form_factors: list[str]) -> str | None:
    """The kind of vehicle routing should assume for a system: its most common type."""
    kinds = [FORM_FACTORS[f] for f in form_factors if f in FORM_FACTORS]
    return max(sorted(set(kinds)), key=kinds.count) if kinds else None


def discover(doc: dict[str, object]) -> dict[str, str]:
    """Feed name → URL from a ``gbfs.json`` (2.x: per language; 3.0: one list)."""
    data = doc.get("data")
    if not isinstance(data, dict):
        raise GbfsRejectedError("gbfs.json has no 'data' object")
    feeds = data.get("feeds")
    if feeds is None:  # 2.x: {"en": {"feeds": [...]}}; take the first language
        language = next((v for v in data.values() if isinstance(v, dict)), None)
        feeds = language.get("feeds") if language else None
    if not isinstance(feeds, list):
        raise GbfsRejectedError("gbfs.json lists no feeds")
    return {str(f["name"]): str(f["url"]) for f in feeds if isinstance(f, dict) and "url" in f}


@dataclass
class GbfsPoller:
    """One GBFS system: discovery URL in, writer updates and health records out."""

    source: FeedSource
    discovery_url: str
    fetcher: Fetcher
    writer: LiveWriter
    health: HealthBook
    clock: Callable[[], float] = time.time
    replay: bool = False
    urls: dict[str, str] = field(default_factory=dict)
    _info: tuple[StationInfo, ...] = ()
    _last_count: int = 0
    _form_from_feed: str | None = None
    _vehicles_rejected: int = 0
    interval_s: float = 10.0

    def __post_init__(self) -> None:
        self.health.register(
            FeedHealth(
                feed_id=self.source.id,
                kind="gbfs",
                source=self.discovery_url,
                simulated=self.source.simulated,
                replay=self.replay,
            )
        )

    @property
    def system(self) -> SharedSystem:
        """The routing view of this system."""
        return SharedSystem(
            system_id=self.source.id,
            name=self.source.name or self.source.id,
            form_factor=(
                self._form_from_feed  # the feed's vehicle_types win over the config
                or (
                    self.source.simulate.form_factor
                    if self.source.simulate
                    else self.source.form_factor
                )
            ),
            free_floating_return=(
                self.source.simulate.free_floating_return
                if self.source.simulate
                else self.source.free_floating_return
            ),
            simulated=self.source.simulated,
        )

    async def _json(self, name: str) -> dict[str, object] | None:
        fetched = await self.fetcher.get(self.urls[name])
        if fetched.body is None:
            return None
        try:
            doc = json.loads(fetched.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GbfsRejectedError(f"{name}: invalid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise GbfsRejectedError(f"{name}: not a JSON object")
        return doc

    async def poll_once(self) -> bool:
        """One poll. Returns True if new data was applied. Never raises."""
        expected = (CorrespondanceError, ValueError, KeyError, TypeError)
        return await self.health.guarded(self.source.id, self._poll, expected, self.clock, "GBFS")

    async def _poll(self) -> bool:
        if not self.urls:
            fetched = await self.fetcher.get(self.discovery_url)
            if fetched.body is None:
                raise GbfsRejectedError("gbfs.json answered 304 before any full response")
            try:
                self.urls = discover(json.loads(fetched.body))
            except json.JSONDecodeError as exc:
                raise GbfsRejectedError(f"gbfs.json: invalid JSON ({exc})") from exc
            for needed in ("station_information", "station_status"):
                if needed not in self.urls:
                    self.urls = {}
                    raise GbfsRejectedError(f"gbfs.json does not list {needed}")
        if "vehicle_types" in self.urls:
            types_doc = await self._json("vehicle_types")
            if types_doc is not None:
                self._form_from_feed = routing_form_factor(
                    [t.form_factor for t in parse_vehicle_types(types_doc).records]
                )
        info_doc = await self._json("station_information")
        if info_doc is not None:
            info = parse_station_information(info_doc)
            self._info = info.records
        status_doc = await self._json("station_status")
        if status_doc is None:
            await self.health.not_modified(self.source.id)
            return False
        status = parse_station_status(status_doc)
        now = self.clock()
        if status.ttl:
            self.interval_s = min(max(float(status.ttl), MIN_INTERVAL_S), MAX_INTERVAL_S)
        if status.last_updated > now + FUTURE_TOLERANCE_S:
            raise GbfsRejectedError(
                f"station_status last_updated {status.last_updated} is in the future"
            )
        stale_after = max(3 * float(status.ttl or 0), STALE_AFTER_S)
        age = now - status.last_updated
        if age > stale_after:
            # availability this old is no better than a guess: never route on it
            raise GbfsRejectedError(
                f"station_status last_updated is {age / 3600:.1f} h old "
                f"(more than {stale_after / 3600:.1f} h); keeping the last good state"
            )
        if not status.records and self._last_count:
            raise GbfsRejectedError(
                f"station_status suddenly lists zero stations "
                f"(had {self._last_count}); keeping the last good state"
            )
        where = {i.station_id: i for i in self._info}
        form = self.system.form_factor
        stations = [
            SharedStation(
                system_id=self.source.id,
                station_id=s.station_id,
                name=where[s.station_id].name,
                lat=where[s.station_id].lat,
                lon=where[s.station_id].lon,
                form_factor=form,
                vehicles_available=s.num_vehicles_available,
                docks_available=s.num_docks_available or 0,
                is_renting=s.is_renting,
                is_returning=s.is_returning,
                simulated=self.source.simulated,
            )
            for s in status.records
            if s.is_installed and s.station_id in where
        ]
        vehicles = await self._vehicles(form)
        zones = await self._zones()
        await self.writer.apply_gbfs(self.system, stations, vehicles, zones)
        self._last_count = len(stations)
        await self.health.success(
            self.source.id,
            records=len(stations) + len(vehicles),
            rejected=status.rejected + self._vehicles_rejected,
            last_updated=float(status.last_updated),
            ttl_s=float(status.ttl),
            stale=age > 3 * float(status.ttl or 0) + 60,  # late, but still usable
            now=now,
        )
        return True

    async def _zones(self) -> tuple[GeoZone, ...]:
        """Geofencing zones, when the system publishes them (kept on 304)."""
        if "geofencing_zones" not in self.urls:
            return ()
        doc = await self._json("geofencing_zones")
        if doc is None:
            return self.writer.holder.current.zones.get(self.source.id, ())
        parsed = parse_geofencing_zones(doc)
        return tuple(
            GeoZone(
                polygons=z.polygons,
                ride_through_allowed=z.ride_through_allowed,
                ride_end_allowed=z.ride_end_allowed,
                ride_start_allowed=z.ride_start_allowed,
            )
            for z in parsed.records
            if not z.is_global
        )

    async def _vehicles(self, form: str) -> list[SharedVehicle]:
        name = next((n for n in ("vehicle_status", "free_bike_status") if n in self.urls), None)
        if name is None:
            return []
        doc = await self._json(name)
        if doc is None:
            return [v for v in self.writer.holder.current.vehicles if v.system_id == self.source.id]
        parsed = parse_vehicle_status(doc)  # schema-checked; bad records dropped, counted
        self._vehicles_rejected = parsed.rejected
        return [
            SharedVehicle(
                system_id=self.source.id,
                vehicle_id=v.vehicle_id,
                lat=v.lat,
                lon=v.lon,
                form_factor=form,
                simulated=self.source.simulated,
            )
            for v in parsed.records
            if v.lat is not None
            and v.lon is not None
            and v.station_id is None
            and not v.is_reserved
            and not v.is_disabled
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set, every ``ttl`` seconds (clamped), backing off on faults."""
        while not stop.is_set():
            await self.poll_once()
            failures = self.health.feeds[self.source.id].consecutive_failures
            wait = self.interval_s * (2 ** min(failures, 5) if failures else 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(wait, MAX_INTERVAL_S))
