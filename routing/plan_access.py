"""Planner stages 1 and 2: the request, its shared context, the endpoints snapped to the
streets, and the access options (every way of reaching transit stops from the origin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from correspondance.geo import WALK_SPEED_M_S
from routing.base import CityBase
from routing.chains import ChainResult
from routing.errors import OutsideCityError
from routing.itinerary import Leg
from routing.modes import (
    ModeContext,
    access_park_and_ride,
    access_shared,
    access_walk,
)
from routing.overlay import LiveOverlay
from routing.streets import Snap

STREET_MODES = frozenset({"walk", "bicycle", "car", "bikeshare", "carshare"})
ALL_MODES = STREET_MODES | {"transit"}
DEFAULT_MODES = frozenset({"walk", "transit"})


@dataclass(frozen=True)
class PlanRequest:
    """What the traveller asks: from, to, when (aware datetime), how.

    ``depart`` is the time to leave at, or with ``arrive_by`` the time to arrive by.
    """

    origin: tuple[float, float]
    destination: tuple[float, float]
    depart: dt.datetime
    walk_speed_m_s: float = WALK_SPEED_M_S
    max_access_walk_s: float = 1200.0
    max_snap_m: float = 500.0
    max_rides: int = 5
    modes: frozenset[str] = DEFAULT_MODES
    arrive_by: bool = False


@dataclass(frozen=True)
class Endpoints:
    """Stage 1 output: origin and destination snapped to the walk network."""

    origin: Snap
    destination: Snap


@dataclass
class AccessOption:
    """A way to reach transit stops from the origin: a chain and its label."""

    label: str
    chain: ChainResult | None
    system_id: str | None = None
    simulated: bool = False
    cost: NDArray[np.float64] | None = None  # seconds from the start to each stop
    prefix: Callable[[int], list[Leg]] | None = None  # fixed legs to a stop (aboard a trip)

    @property
    def stop_cost(self) -> NDArray[np.float64]:
        """Seconds from the start to every stop (inf where unreachable)."""
        if self.cost is not None:
            return self.cost
        assert self.chain is not None
        return self.chain.final_cost


@dataclass
class PlanContext:
    """Everything the stages share for one request."""

    base: CityBase
    request: PlanRequest
    overlay: LiveOverlay
    modes: ModeContext = field(init=False)

    def __post_init__(self) -> None:
        self.modes = ModeContext(
            base=self.base,
            overlay=self.overlay,
            origin=self.request.origin,
            destination=self.request.destination,
            walk_speed_m_s=self.request.walk_speed_m_s,
            max_walk_s=self.request.max_access_walk_s,
        )

    @property
    def tz(self) -> dt.tzinfo:
        """The city's timezone."""
        return self.base.city.tz

    def systems(self, form_factor: str) -> list[tuple[str, bool, bool]]:
        """(system_id, free_floating_return, simulated) of live systems of a vehicle kind."""
        return [
            (s.system_id, s.free_floating_return, s.simulated)
            for s in self.overlay.systems.values()
            if s.form_factor == form_factor
        ]


def snap_endpoints(base: CityBase, request: PlanRequest) -> Endpoints:
    """Stage 1: check both points lie in the city and snap them to walkable streets.

    Raises
    ------
    OutsideCityError, NoStreetNearbyError
    """
    for label, (lat, lon) in (("from", request.origin), ("to", request.destination)):
        if not base.city.contains(lat, lon):
            raise OutsideCityError(
                f"'{label}' {lat:.6f},{lon:.6f} is outside {base.city.name} "
                f"(bbox {', '.join(f'{v:g}' for v in base.city.bbox)})"
            )
    walk = base.streets["walk"]
    return Endpoints(
        origin=walk.snap(*request.origin, request.max_snap_m),
        destination=walk.snap(*request.destination, request.max_snap_m),
    )


def access_options(ctx: PlanContext) -> list[AccessOption]:
    """Stage 2a: every way of reaching stops the requested modes allow."""
    options = [AccessOption("walk", access_walk(ctx.modes))]
    modes = ctx.request.modes
    for form, mode in (("bicycle", "bikeshare"), ("car", "carshare")):
        if mode not in modes:
            continue
        for system_id, _free, simulated in ctx.systems(form):
            chain = access_shared(ctx.modes, ctx.overlay.systems[system_id])
            if chain is not None:
                options.append(AccessOption(mode, chain, system_id, simulated))
    if "car" in modes:
        chain = access_park_and_ride(ctx.modes)
        if chain is not None:
            options.append(AccessOption("park_and_ride", chain))
    return options
