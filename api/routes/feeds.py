"""``GET /api/v1/feeds``: the health of every live feed of a city."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CityBaseDep, State
from api.schemas import ErrorOut

router = APIRouter(prefix="/api/v1", tags=["feeds"])


@router.get("/feeds", responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def list_feeds(state: State, base: CityBaseDep) -> dict[str, Any]:
    """Each live feed: status (pending, ok, degraded, stale, replay) with the reason, last
    success and error, staleness against its own ``last_updated``, seconds since its last
    recorded poll (``silent_s``), records applied and rejected, and whether it is simulated
    or a replay (then ``data_date`` is the recorded data's date). ``gtfs_notices`` lists the
    faults of the static GTFS feeds that the build tolerated (MobilityData validator notice
    codes).

    Judged when read: a feed with no poll recorded for max(3 × ttl, 60 s) is ``stale``
    even if nothing updates its record any more; a replay is ``replay``, never ``ok``."""
    feeds = await state.feed_health(base.city.id)
    overlay = state.overlay(base.city.id).current
    return {
        "city": base.city.id,
        "overlay_version": overlay.version,
        "feeds": feeds,
        "gtfs_notices": [notice.as_json() for notice in base.notices],
    }


@router.get("/vehicles", responses={404: {"model": ErrorOut}})
async def transit_vehicles(state: State, base: CityBaseDep) -> dict[str, Any]:
    """Transit vehicle positions from GTFS-Realtime, as GeoJSON points (display only)."""
    overlay = state.overlay(base.city.id).current
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [v.lon, v.lat]},
                "properties": {
                    "vehicle_id": v.vehicle_id,
                    "trip_id": v.trip_id,
                    "route_id": v.route_id,
                    "bearing": v.bearing,
                    "stop_id": v.stop_id,
                    "timestamp": v.timestamp,
                },
            }
            for v in overlay.transit_vehicles
        ],
    }
