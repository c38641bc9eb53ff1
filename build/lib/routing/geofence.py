"""Geofencing zones applied to street networks and end points (no-ride, no-parking areas).

Masks are computed with shapely's vectorised point-in-polygon on edge midpoints and
cached per (network, zones), so a query only indexes arrays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon

from routing.overlay import GeoZone
from routing.streets import StreetNetwork


def _polygons(zones: tuple[GeoZone, ...], rule: str) -> list[Polygon]:
    out = []
    for zone in zones:
        if getattr(zone, rule):
            continue
        for rings in zone.polygons:
            if rings and len(rings[0]) >= 3:
                out.append(Polygon(rings[0], rings[1:]))
    return out


def inside(
    zones: tuple[GeoZone, ...], rule: str, lat: NDArray[np.float64], lon: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Which points fall in a zone where ``rule`` (e.g. ``ride_end_allowed``) is False."""
    polygons = _polygons(zones, rule)
    hit = np.zeros(len(lat), bool)
    for polygon in polygons:
        hit |= shapely.contains_xy(polygon, lon, lat)
    return hit


@lru_cache(maxsize=32)
def no_ride_edges(net: StreetNetwork, zones: tuple[GeoZone, ...]) -> NDArray[np.bool_]:
    """Edges whose midpoint lies where riding through is not allowed."""
    mid_lat = (net.node_lat[net.tail] + net.node_lat[net.head]) / 2
    mid_lon = (net.node_lon[net.tail] + net.node_lon[net.head]) / 2
    mask = inside(zones, "ride_through_allowed", mid_lat, mid_lon)
    mask.setflags(write=False)
    return mask


def ride_weights(
    net: StreetNetwork, weight: NDArray[np.float64], zones: tuple[GeoZone, ...]
) -> NDArray[np.float64]:
    """``weight`` with no-ride edges closed (copy only when a zone closes something)."""
    if not zones:
        return weight
    mask = no_ride_edges(net, zones)
    if not mask.any():
        return weight
    closed = weight.copy()
    closed[mask] = np.inf
    return closed
