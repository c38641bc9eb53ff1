"""Warm a process up before its first user waits.

The hot paths are numba kernels compiled ahead and cached on disk (``cache=True``), but a
fresh process still loads and links them on first call: about 1–8 s, depending on the
machine's load. Every serving or engine process plans one trip at start-up, so the first
real plan or replan costs what any other does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time

from correspondance.errors import CorrespondanceError
from routing.base import CityBase
from routing.overlay import LiveOverlay
from routing.plan import ALL_MODES, PlanRequest, plan_trip
from routing.state import Holding, TravellerState, replan

log = logging.getLogger("correspondance.routing")


def warm_up(base: CityBase, overlay: LiveOverlay) -> float:
    """Plan one trip in the city with every mode, and replan it holding each shared vehicle
    kind the overlay has; the seconds it took.

    The city's demo trip is used when it has one (a real door-to-door query at a time
    with service); otherwise a query across the middle of the city at noon of its default
    service date. Failures are logged, never raised: warming up is an optimisation.
    """
    city = base.city
    started = time.perf_counter()
    if city.demo is not None:
        origin, destination = city.demo.origin, city.demo.destination
        clock = city.demo.depart
    else:
        west, south, east, north = city.bbox  # min lon, min lat, max lon, max lat
        mid_lat, mid_lon = (south + north) / 2, (west + east) / 2
        origin = (mid_lat - (north - south) / 8, mid_lon - (east - west) / 8)
        destination = (mid_lat + (north - south) / 8, mid_lon + (east - west) / 8)
        clock = dt.time(12, 0)
    day = city.default_date
    request = PlanRequest(
        origin=origin,
        destination=destination,
        depart=dt.datetime.combine(day, clock, tzinfo=city.tz),
        modes=ALL_MODES,
    )
    try:
        plan_trip(base, request, overlay)
        # the live-trip engine replans from what a traveller holds: other chains
        for system in overlay.systems.values():
            holding: Holding = "carshare" if system.form_factor == "car" else "bikeshare"
            state = TravellerState(
                at=request.depart,
                lat=origin[0],
                lon=origin[1],
                holding=holding,
                system_id=system.system_id,
            )
            with contextlib.suppress(CorrespondanceError):
                replan(base, state, destination, overlay, ALL_MODES, request.walk_speed_m_s)
    except Exception:
        log.warning("warm-up plan in %s failed", city.id, exc_info=True)
    took = time.perf_counter() - started
    log.info("warmed up %s in %.2f s", city.id, took)
    return took
