"""City bundles: one ``city.toml`` per folder of ``data/`` describes a city.

Adding a city is writing one config file; no code names a city.
"""

from __future__ import annotations

import datetime as dt
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from correspondance.errors import ConfigError, UnknownCityError

CITY_FILE = "city.toml"
log = logging.getLogger("correspondance")


class SimulatorConfig(BaseModel):
    """A simulated GBFS system, for places with no real feed (always labelled simulated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    form_factor: Literal["bicycle", "car", "scooter"]
    stations: Annotated[int, Field(ge=0, le=2000)] = 30
    vehicles: Annotated[int, Field(ge=0, le=5000)] = 0  # free-floating
    free_floating_return: bool = False
    seed: int = 1
    tick_s: Annotated[float, Field(gt=0)] = 60.0


class FeedSource(BaseModel):
    """A feed: a file or folder in the city bundle, a URL, or a simulator.

    For GBFS, a ``path`` folder is a recording (``station_information.json`` plus
    ``station_status/<epoch>.json`` snapshots) replayed as a live feed; a ``url`` is polled;
    ``simulate`` runs a deterministic simulator served over loopback HTTP.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str | None = None
    path: str | None = None
    url: str | None = None
    simulate: SimulatorConfig | None = None
    simulated: bool = False
    form_factor: Literal["bicycle", "car", "scooter"] = "bicycle"
    free_floating_return: bool = False

    @model_validator(mode="after")
    def _exactly_one_location(self) -> FeedSource:
        given = [k for k in ("path", "url", "simulate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"feed {self.id!r} needs exactly one of 'path', 'url' or 'simulate'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.simulate is not None and not self.simulated:
            object.__setattr__(self, "simulated", True)  # a simulator is always labelled
        return self


class RealtimeSimulatorConfig(BaseModel):
    """A simulated GTFS-Realtime feed over one static GTFS feed of the city: trip delays,
    cancellations and service alerts, deterministic for ``seed`` and the simulated clock
    (``realtime/gtfsrt_simulator.py``; always labelled simulated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feed: str = Field(description="id of the city's [[gtfs]] feed whose trips it disrupts")
    seed: int = 1
    tick_s: Annotated[float, Field(gt=0)] = 30.0
    episode_ticks: Annotated[int, Field(ge=1, le=10_000)] = 10
    late_share: Annotated[float, Field(ge=0, le=1)] = 0.25
    cancel_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    max_delay_s: Annotated[int, Field(ge=60, le=3600)] = 900
    alerts: Annotated[int, Field(ge=0, le=3)] = 3
    service_date: dt.date | None = Field(
        default=None, description="the static service day it simulates (default_date if unset)"
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> RealtimeSimulatorConfig:
        if self.late_share + self.cancel_share > 1:
            raise ValueError("late_share + cancel_share must not exceed 1")
        return self


class RealtimeSource(BaseModel):
    """A GTFS-Realtime feed (trip updates, alerts, vehicle positions in any mix): a file of
    the city bundle, a URL, or a simulator served over loopback HTTP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    name: str | None = None
    path: str | None = None
    url: str | None = None
    simulate: RealtimeSimulatorConfig | None = None
    simulated: bool = False
    matcher: Literal["exact", "nyc-suffix"] = "exact"
    poll_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _exactly_one_location(self) -> RealtimeSource:
        given = [k for k in ("path", "url", "simulate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"realtime feed {self.id!r} needs exactly one of 'path', 'url' or 'simulate'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.simulate is not None and not self.simulated:
            object.__setattr__(self, "simulated", True)  # a simulator is always labelled
        return self


class OsmSource(BaseModel):
    """The OpenStreetMap extract of the city (PBF or XML)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str


class DemoTrip(BaseModel):
    """A scripted live-trip scenario on the city's real data (``?demo=1`` in the web app)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: tuple[float, float] = Field(description="lat, lon")
    destination: tuple[float, float] = Field(description="lat, lon")
    depart: dt.time
    modes: list[str] = Field(default_factory=lambda: ["walk", "transit", "carshare"])


class CityConfig(BaseModel):
    """One city: where its feeds are, its extent, timezone and default service date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str
    timezone: str
    bbox: tuple[float, float, float, float] = Field(
        description="min_lon, min_lat, max_lon, max_lat (WGS84)"
    )
    default_date: dt.date
    default_time: dt.time = dt.time(8, 0)
    default: bool = False
    attribution: list[str] = Field(default_factory=list)
    osm: OsmSource
    gtfs: list[FeedSource] = Field(default_factory=list)
    gbfs: list[FeedSource] = Field(default_factory=list)
    gtfs_rt: list[RealtimeSource] = Field(default_factory=list)
    demo: DemoTrip | None = None
    folder: Path = Field(default=Path(), exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("bbox")
    @classmethod
    def _ordered_bbox(cls, value: tuple[float, float, float, float]) -> tuple[float, ...]:
        min_lon, min_lat, max_lon, max_lat = value
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            raise ValueError("bbox must be min_lon, min_lat, max_lon, max_lat with min < max")
        return value

    @model_validator(mode="after")
    def _simulated_feeds_known(self) -> CityConfig:
        static = {g.id for g in self.gtfs}
        for rt in self.gtfs_rt:
            if rt.simulate is not None and rt.simulate.feed not in static:
                raise ValueError(
                    f"realtime feed {rt.id!r} simulates unknown GTFS feed {rt.simulate.feed!r}"
                    f" (known: {', '.join(sorted(static)) or 'none'})"
                )
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The city's timezone."""
        return ZoneInfo(self.timezone)

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a WGS84 point lies inside the city's bounding box."""
        min_lon, min_lat, max_lon, max_lat = self.bbox
        return min_lon <= lon <= max_lon and min_lat <= lat <= max_lat

    def resolve(self, relative: str) -> Path:
        """Absolute path of a file named in the config, relative to the city folder."""
        return (self.folder / relative).resolve()

    @property
    def center(self) -> tuple[float, float]:
        """(lat, lon) of the bbox centre."""
        min_lon, min_lat, max_lon, max_lat = self.bbox
        return ((min_lat + max_lat) / 2, (min_lon + max_lon) / 2)


def load_city(folder: Path) -> CityConfig:
    """Read and validate ``folder/city.toml``.

    Parameters
    ----------
    folder
        A city bundle folder.

    Returns
    -------
    CityConfig

    Raises
    ------
    ConfigError
        If the file is missing, not TOML, or invalid; the message lists every problem.
    """
    path = folder / CITY_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: city config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return CityConfig.model_validate({**raw, "folder": folder.resolve()})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid city config: {problems}") from exc


class Cities(dict[str, CityConfig]):
    """Cities by id, and ``broken``: the folders skipped because their config is invalid.

    ``broken`` maps a folder's name to the :class:`ConfigError` naming its problem, so that
    asking for that city by name still gives the problem, not "unknown city".
    """

    def __init__(
        self,
        cities: dict[str, CityConfig] | None = None,
        broken: dict[str, ConfigError] | None = None,
    ) -> None:
        super().__init__(cities or {})
        self.broken: dict[str, ConfigError] = dict(broken or {})


def discover_cities(data_dir: Path) -> Cities:
    """Every city bundle under ``data_dir``, keyed by city id.

    A folder whose config is invalid, or declares an id an earlier folder (in name order)
    already took, is skipped with a warning naming it and its problem (logger
    ``correspondance``), and listed in the result's ``broken``: one broken city never
    keeps the others from building and serving.
    """
    cities = Cities()
    for config_path in sorted(data_dir.glob(f"*/{CITY_FILE}")):
        folder = config_path.parent
        try:
            city = load_city(folder)
            if city.id in cities:
                raise ConfigError(f"city id {city.id!r} declared twice ({config_path})")
        except ConfigError as exc:
            cities.broken[folder.name] = exc
            log.warning("city %r skipped: %s", folder.name, exc)
            continue
        cities[city.id] = city
    return cities


def get_city(cities: dict[str, CityConfig], city_id: str | None) -> CityConfig:
    """The city named ``city_id``, or the default city when ``city_id`` is None.

    Raises
    ------
    ConfigError
        If ``city_id`` names a folder whose config is broken (see :func:`discover_cities`).
    UnknownCityError
        If no such city is configured (the message lists the known ones).
    """
    broken = cities.broken if isinstance(cities, Cities) else {}
    if city_id is None:
        defaults = [c for c in cities.values() if c.default] or list(cities.values())[:1]
        if not defaults:
            if broken:
                raise next(iter(broken.values()))
            raise UnknownCityError("no city is configured in the data folder")
        return defaults[0]
    try:
        return cities[city_id]
    except KeyError:
        if city_id in broken:
            raise broken[city_id] from None
        known = ", ".join(sorted(cities)) or "none"
        raise UnknownCityError(f"unknown city {city_id!r}; known cities: {known}") from None
