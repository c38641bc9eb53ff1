"""The typed application state the lifespan builds and the routes read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from correspondance.cities import CityConfig
from correspondance.settings import Settings
from correspondance.store import StateStore
from crowdsource.congestion import CongestionService
from crowdsource.desk import ReportDeskOpener
from crowdsource.operator_desk import OperatorDesk
from feeds.tile_shelf import TileShelf
from realtime.dashboard_sampler import DashboardSampler
from realtime.health import read_health
from realtime.runtime import LiveRuntime
from realtime.trips.hub import TripHub
from realtime.trips.service import TripService
from routing.base import CityBase
from routing.overlay import OverlayHolder
from routing.places import PlaceIndex


@dataclass
class AppState:
    """Store, settings and the loaded city bases (one reference per city, swapped whole)."""

    settings: Settings
    store: StateStore
    cities: dict[str, CityConfig]
    bases: dict[str, CityBase] = field(default_factory=dict)
    default_city: str = ""
    basemaps: dict[str, bytes] = field(default_factory=dict)
    places: dict[str, PlaceIndex] = field(default_factory=dict)  # place search, per city

    tile_shelf: TileShelf = field(init=False)  # feeds.tile_shelf, for api/routes/tiles.py
    overlays: dict[str, OverlayHolder] = field(default_factory=dict)
    trip_hub: TripHub | None = None
    runtime: LiveRuntime | None = None  # the live side this process runs (its role)
    trips: TripService | None = None  # realtime.trips.service, for api/routes/trips.py
    live_congestion: CongestionService | None = None  # crowdsource.congestion
    operators: OperatorDesk | None = None  # crowdsource.operator_desk
    report_desks: ReportDeskOpener | None = None  # crowdsource.desk, for api/routes/reports.py

    def report_desk(self) -> ReportDeskOpener:
        """The report desk of the served cities (opened at its first use)."""
        if self.report_desks is None:
            self.report_desks = ReportDeskOpener(self.store, self.settings, self.bases)
        return self.report_desks

    def congestion(self) -> CongestionService:
        """The live congestion service over this process's store (``crowdsource.congestion``)."""
        if self.live_congestion is None:
            self.live_congestion = CongestionService(
                self.store, report_ttl_s=self.settings.report_ttl_s, k=self.settings.fusion_k
            )
        return self.live_congestion

    def operator_desk(self) -> OperatorDesk:
        """Operator decisions, audit and dashboard history (``crowdsource.operator_desk``)."""
        if self.operators is None:
            self.operators = OperatorDesk(self.store, k=self.settings.fusion_k)
        return self.operators

    def dashboard_sampler(self) -> DashboardSampler:
        """The dashboard's minute sampler (``realtime.dashboard_sampler``)."""
        return DashboardSampler(self.store, self.congestion())

    async def feed_health(self, city: str) -> list[dict[str, Any]]:
        """Each live feed of a city as its poller last recorded it (``realtime.health``)."""
        return await read_health(self.store, city)

    def trip_service(self) -> TripService:
        """The live-trip service over this process's store (``realtime.trips.service``)."""
        if self.trips is None:
            self.trips = TripService(self.store, k=self.settings.fusion_k, demo=self.settings.demo)
        return self.trips

    def __post_init__(self) -> None:
        self.tile_shelf = TileShelf(self.settings.cache_dir)

    def overlay(self, city_id: str) -> OverlayHolder:
        """The live overlay holder of a served city (created with the city's base)."""
        holder = self.overlays.get(city_id)
        if holder is None:
            holder = self.overlays[city_id] = OverlayHolder(self.bases[city_id].streets["drive"])
        return holder
