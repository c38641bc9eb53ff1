"""City metadata and the map layers drawn from our own OSM and GTFS data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import State, get_city_base
from api.health import HealthOut, check_health
from api.schemas import CitiesOut, CityOut, ErrorOut, ServiceDayOut, ServiceOut
from correspondance.errors import InputError
from routing.basemap import basemap_geojson, stops_geojson
from routing.service import service_days

MAX_SERVICE_DAYS = 366

router = APIRouter(prefix="/api/v1", tags=["cities"])
GEOJSON = "application/geo+json"


class GeoJSONResponse(Response):
    """A GeoJSON document (RFC 7946), served and documented as ``application/geo+json``."""

    media_type = GEOJSON


GEOJSON_OK: dict[int | str, dict[str, object]] = {
    200: {
        "description": "A GeoJSON FeatureCollection.",
        "content": {GEOJSON: {"schema": {"type": "object", "required": ["type", "features"]}}},
    },
    404: {
        "description": "Unknown city.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    },
}


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The store is unreachable."}},
)
async def health(state: State) -> JSONResponse:
    """What this process serves and each dependency: the store (503 if it does not answer),
    each city's single writer (its lock held by some process) and live feeds (fresh)."""
    out = await check_health(state)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=503 if out.status == "down" else 200,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/cities", response_model=CitiesOut)
async def list_cities(state: State) -> CitiesOut:
    """The cities this server serves."""
    out = []
    for city_id, base in sorted(state.bases.items()):
        city = base.city
        start, end = base.timetable.validity
        out.append(
            CityOut(
                id=city.id,
                name=city.name,
                timezone=city.timezone,
                bbox=city.bbox,
                center=city.center,
                default_date=city.default_date,
                default_time=city.default_time.strftime("%H:%M"),
                default=city_id == state.default_city,
                attribution=city.attribution,
                service_start=start,
                service_end=end,
            )
        )
    return CitiesOut(cities=out)


@router.get("/cities/{city}/basemap", response_class=GeoJSONResponse, responses=GEOJSON_OK)
async def basemap(city: str, state: State) -> Response:
    """Street lines for the base map (no external tile server is used)."""
    base = get_city_base(state, city)
    body = state.basemaps.get(city)
    if body is None:
        body = state.basemaps[city] = basemap_geojson(base)
    return GeoJSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/cities/{city}/stops", response_class=GeoJSONResponse, responses=GEOJSON_OK)
async def stops(city: str, state: State) -> Response:
    """Transit stops inside the city's extent, as GeoJSON points."""
    body = stops_geojson(get_city_base(state, city))
    return GeoJSONResponse(body)


def _gtfs_time(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@router.get(
    "/cities/{city}/service",
    response_model=ServiceOut,
    responses={
        400: {"model": ErrorOut, "description": "Dates malformed, reversed or over a year apart."},
        404: {"model": ErrorOut, "description": "Unknown city."},
    },
)
async def service(
    city: str,
    state: State,
    start: Annotated[
        dt.date | None,
        Query(alias="from", description="First date (default: the feeds' first service date)."),
    ] = None,
    end: Annotated[
        dt.date | None,
        Query(alias="to", description="Last date, included (default: 30 days after `from`)."),
    ] = None,
) -> ServiceOut:
    """When transit runs, per date: the hours with service, from the GTFS calendar.

    The feeds are dated (the bundled ones are for 2019): ``service_start`` and ``service_end``
    say which dates have timetables at all. At most 366 days per request.
    """
    base = get_city_base(state, city)
    tt = base.timetable
    first, last = tt.validity
    start = start or first
    end = end or start + dt.timedelta(days=30)
    if end < start:
        raise InputError(f"'to' ({end}) is before 'from' ({start})", field="to")
    if (end - start).days + 1 > MAX_SERVICE_DAYS:
        raise InputError(f"at most {MAX_SERVICE_DAYS} days per request", field="to")
    days = [
        ServiceDayOut(
            date=d.date,
            trips=d.trips,
            hours=list(d.hours),
            first_departure=_gtfs_time(d.first_departure_s),
            last_departure=_gtfs_time(d.last_departure_s),
            modes={mode: list(hours) for mode, hours in d.modes.items()},
        )
        for d in service_days(tt, start, end)
    ]
    return ServiceOut(
        city=base.city.id,
        timezone=base.city.timezone,
        service_start=first,
        service_end=last,
        days=days,
    )
