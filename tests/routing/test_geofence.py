"""GBFS geofencing zones respected by routing: no riding through, no ending a rental."""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely
from shapely.geometry import Polygon

from routing.base import CityBase
from routing.overlay import GeoZone, OverlayHolder, SharedSystem, SharedVehicle
from routing.plan import Itinerary, PlanRequest, plan_trip

ORIGIN = (-30.0346, -51.2177)
DEST = (-30.0277, -51.1793)
SYSTEM = SharedSystem("zone-cars", "Zone cars", "car", free_floating_return=True, simulated=True)


def _box(lat: float, lon: float, half_deg: float) -> tuple[tuple[tuple[float, float], ...], ...]:
    ring = (
        (lon - half_deg, lat - half_deg),
        (lon + half_deg, lat - half_deg),
        (lon + half_deg, lat + half_deg),
        (lon - half_deg, lat + half_deg),
        (lon - half_deg, lat - half_deg),
    )
    return (ring,)


def _plan(base: CityBase, zones: tuple[GeoZone, ...]) -> list[Itinerary]:
    holder = OverlayHolder(base.streets["drive"])
    car = SharedVehicle("zone-cars", "v1", -30.0340, -51.2170, "car", simulated=True)
    holder.replace_system(SYSTEM, [], [car], zones)
    request = PlanRequest(
        ORIGIN,
        DEST,
        dt.datetime(2019, 5, 15, 13, tzinfo=base.city.tz),
        modes=frozenset({"walk", "carshare"}),
    )
    return plan_trip(base, request, holder.current)


def _carshare(its: list[Itinerary]) -> Itinerary | None:
    return next((it for it in its if it.family == ("carshare",)), None)


def test_no_parking_at_the_destination_removes_the_free_floating_option(
    poa_base: CityBase,
) -> None:
    assert _carshare(_plan(poa_base, ())) is not None
    no_parking = GeoZone(polygons=(_box(*DEST, 0.002),), ride_end_allowed=False)
    assert _carshare(_plan(poa_base, (no_parking,))) is None
    # a zone elsewhere changes nothing
    far = GeoZone(polygons=(_box(-30.09, -51.24, 0.002),), ride_end_allowed=False)
    assert _carshare(_plan(poa_base, (far,))) is not None


def test_no_ride_zone_is_driven_around(poa_base: CityBase) -> None:
    free = _carshare(_plan(poa_base, ()))
    assert free is not None
    leg = next(leg for leg in free.legs if leg.mode == "carshare")
    drive = poa_base.streets["drive"]
    # close a box around the middle of the free route
    mid = leg.drive_edges[len(leg.drive_edges) // 2]
    lat = float((drive.node_lat[drive.tail[mid]] + drive.node_lat[drive.head[mid]]) / 2)
    lon = float((drive.node_lon[drive.tail[mid]] + drive.node_lon[drive.head[mid]]) / 2)
    polygon = _box(lat, lon, 0.0015)
    zone = GeoZone(polygons=(polygon,), ride_through_allowed=False)
    detour = _carshare(_plan(poa_base, (zone,)))
    assert detour is not None
    dleg = next(leg for leg in detour.legs if leg.mode == "carshare")
    edges = np.array(dleg.drive_edges)
    mid_lat = (drive.node_lat[drive.tail[edges]] + drive.node_lat[drive.head[edges]]) / 2
    mid_lon = (drive.node_lon[drive.tail[edges]] + drive.node_lon[drive.head[edges]]) / 2
    assert not shapely.contains_xy(Polygon(polygon[0]), mid_lon, mid_lat).any()
    assert detour.arrival >= free.arrival
