"""The typed application state the lifespan builds and the routes read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from correspondance.cities import CityConfig
from correspondance.settings import Settings
from correspondance.store import StateStore
from feeds.tiles import TileArchive
from realtime.runtime import LiveRuntime
from realtime.trips.hub import TripHub
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

    tile_archives: dict[str, TileArchive] = field(default_factory=dict)  # api/routes/tiles.py
    tile_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one tile build at a time
    overlays: dict[str, OverlayHolder] = field(default_factory=dict)
    trip_hub: TripHub | None = None
    runtime: LiveRuntime | None = None  # the live side this process runs (its role)

    def overlay(self, city_id: str) -> OverlayHolder:
        """The live overlay holder of a served city (created with the city's base)."""
        holder = self.overlays.get(city_id)
        if holder is None:
            holder = self.overlays[city_id] = OverlayHolder(self.bases[city_id].streets["drive"])
        return holder
