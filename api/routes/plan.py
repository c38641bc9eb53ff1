"""``GET /api/v1/plan``: door-to-door itineraries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import CityBaseDep, State
from api.schemas import ErrorOut, ItineraryOut, LatLon, PlanOut
from correspondance import bounds
from correspondance.errors import InputError
from routing.plan import ALL_MODES, PlanRequest, plan_trip

router = APIRouter(prefix="/api/v1", tags=["plan"])
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
ALLOWED_MODES = ALL_MODES


def parse_latlon(text: str, field: str) -> tuple[float, float]:
    """'LAT,LON' → (lat, lon).

    Raises
    ------
    InputError
        Naming the field, if the text is not two numbers or out of range.
    """
    match = _LATLON.match(text)
    if not match:
        raise InputError(
            f"'{field}' must be 'LAT,LON' in decimal degrees, got {text!r}", field=field
        )
    lat, lon = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(f"'{field}' {text!r} is not a valid coordinate", field=field)
    return lat, lon


def parse_depart(
    text: str | None,
    base_tz: dt.tzinfo,
    default: dt.datetime,
    window: tuple[dt.datetime, dt.datetime],
) -> dt.datetime:
    """ISO 8601 → aware datetime inside the feeds' service window; naive times are local to
    the city.

    Raises
    ------
    InputError
        ``invalid_parameter`` if the text is not an ISO 8601 date-time, ``out_of_range`` if
        it is outside ``window`` (:func:`correspondance.bounds.service_window`).
    """
    if text is None:
        return default
    return bounds.parse_datetime(text, "depart", base_tz, window)


@router.get(
    "/plan",
    response_model=PlanOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def get_plan(
    state: State,
    base: CityBaseDep,
    from_: Annotated[str, Query(alias="from", max_length=64, description="LAT,LON")],
    to: Annotated[str, Query(max_length=64, description="LAT,LON")],
    depart: Annotated[
        str | None,
        Query(
            max_length=40,
            description=(
                "ISO 8601; local city time if no offset. Defaults to the city's default service "
                "date and time (feeds are dated)."
            ),
        ),
    ] = None,
    modes: Annotated[
        str,
        Query(
            max_length=64,
            description="Comma list of: walk, transit, bicycle, car, bikeshare, carshare",
        ),
    ] = ("walk,transit"),
) -> PlanOut:
    """Plan door-to-door walk + transit trips on the city's timetable."""
    origin = parse_latlon(from_, "from")
    destination = parse_latlon(to, "to")
    city = base.city
    default = dt.datetime.combine(city.default_date, city.default_time, tzinfo=city.tz)
    when = parse_depart(depart, city.tz, default, bounds.service_window(base.timetable.validity))
    wanted = frozenset(m.strip() for m in modes.split(",") if m.strip())
    unknown = wanted - ALLOWED_MODES
    if unknown or not wanted:
        raise InputError(
            f"'modes' accepts {', '.join(sorted(ALLOWED_MODES))}; got "
            f"{', '.join(sorted(unknown)) or 'nothing'}",
            field="modes",
        )
    settings = state.settings
    request = PlanRequest(
        origin=origin,
        destination=destination,
        depart=when,
        walk_speed_m_s=settings.walk_speed_m_s,
        max_access_walk_s=settings.max_access_walk_s,
        max_snap_m=settings.max_snap_distance_m,
        modes=wanted,
    )
    overlay = state.overlay(city.id).current  # one consistent live view per request
    itineraries = await run_in_threadpool(plan_trip, base, request, overlay)
    return PlanOut.model_validate(
        {
            "city": city.id,
            "from": LatLon(lat=origin[0], lon=origin[1]),
            "to": LatLon(lat=destination[0], lon=destination[1]),
            "depart": when.astimezone(city.tz),
            "itineraries": [ItineraryOut.of(it, overlay) for it in itineraries],
        }
    )
