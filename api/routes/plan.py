"""``GET /api/v1/plan``: door-to-door itineraries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.cursor import PageCursor, decode_cursor, encode_cursor, query_key
from api.deps import CityBaseDep, State
from api.schemas import ErrorOut, ItineraryOut, LatLon, PageOut, PlanOut
from correspondance import bounds
from correspondance.errors import InputError
from routing.plan import ALL_MODES, PlanRequest, page_times, plan_trip

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


TIME_HELP = (
    "ISO 8601; local city time if no offset. Give `depart` or `arrive`, not both (neither: "
    "leave at the city's default service date and time; feeds are dated)."
)


def plan_time(
    depart: str | None,
    arrive: str | None,
    cursor: str | None,
    key: str,
    tz: dt.tzinfo,
    default: dt.datetime,
    window: tuple[dt.datetime, dt.datetime],
) -> PageCursor:
    """The request's time and direction, from ``depart``, ``arrive`` or a page ``cursor``.

    Raises
    ------
    InputError
        ``conflicting_parameters`` if more than one of the three is given;
        ``invalid_parameter`` / ``out_of_range`` for a bad time, ``invalid_cursor`` for a
        cursor this server did not make for this query.
    """
    given = [
        name
        for name, v in (("depart", depart), ("arrive", arrive), ("cursor", cursor))
        if v is not None
    ]
    if len(given) > 1:
        raise InputError(
            "give one of 'depart', 'arrive' or 'cursor', not "
            + " and ".join(repr(g) for g in given),
            code="conflicting_parameters",
            field=given[1],
        )
    if cursor is not None:
        return decode_cursor(cursor, key, tz, window)
    if arrive is not None:
        return PageCursor(arrive_by=True, at=bounds.parse_datetime(arrive, "arrive", tz, window))
    return PageCursor(arrive_by=False, at=parse_depart(depart, tz, default, window))


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
        str | None, Query(max_length=40, description="Leave at this time. " + TIME_HELP)
    ] = None,
    arrive: Annotated[
        str | None,
        Query(max_length=40, description="Arrive by this time (latest departures). " + TIME_HELP),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=400,
            description=(
                "A `page.earlier` or `page.later` cursor of an earlier answer to the same "
                "from, to and modes; replaces `depart` and `arrive`."
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
    """Plan door-to-door trips on the city's timetable, leaving at or arriving by a time,
    with cursors to the earlier and later departures.

    400 codes: `conflicting_parameters` (more than one of `depart`, `arrive`, `cursor`),
    `invalid_cursor`, `out_of_range` (a time outside the feeds' service window),
    `unknown_parameter`, `invalid_parameter`.
    """
    origin = parse_latlon(from_, "from")
    destination = parse_latlon(to, "to")
    city = base.city
    default = dt.datetime.combine(city.default_date, city.default_time, tzinfo=city.tz)
    wanted = frozenset(m.strip() for m in modes.split(",") if m.strip())
    unknown = wanted - ALLOWED_MODES
    if unknown or not wanted:
        raise InputError(
            f"'modes' accepts {', '.join(sorted(ALLOWED_MODES))}; got "
            f"{', '.join(sorted(unknown)) or 'nothing'}",
            field="modes",
        )
    window = bounds.service_window(base.timetable.validity)
    key = query_key(city.id, origin, destination, wanted)
    when = plan_time(depart, arrive, cursor, key, city.tz, default, window)
    settings = state.settings
    request = PlanRequest(
        origin=origin,
        destination=destination,
        depart=when.at,
        walk_speed_m_s=settings.walk_speed_m_s,
        max_access_walk_s=settings.max_access_walk_s,
        max_snap_m=settings.max_snap_distance_m,
        modes=wanted,
        arrive_by=when.arrive_by,
    )
    overlay = state.overlay(city.id).current  # one consistent live view per request
    itineraries = await run_in_threadpool(plan_trip, base, request, overlay)
    earlier, later = page_times(request, itineraries)
    page = PageOut(
        earlier=_cursor_inside(PageCursor(True, earlier), key, window),
        later=_cursor_inside(PageCursor(False, later), key, window),
    )
    at = when.at.astimezone(city.tz)
    return PlanOut.model_validate(
        {
            "city": city.id,
            "from": LatLon(lat=origin[0], lon=origin[1]),
            "to": LatLon(lat=destination[0], lon=destination[1]),
            "depart": None if when.arrive_by else at,
            "arrive": at if when.arrive_by else None,
            "itineraries": [ItineraryOut.of(it, overlay) for it in itineraries],
            "page": page,
        }
    )


def _cursor_inside(
    cursor: PageCursor, key: str, window: tuple[dt.datetime, dt.datetime]
) -> str | None:
    """The cursor's text, or None when its time leaves the service window (no such page)."""
    if not window[0] <= cursor.at <= window[1]:
        return None
    return encode_cursor(cursor, key)
