"""One earth model for every package: distances, local projections, walking speed.

Distances are great-circle distances on a sphere of the mean earth radius (IUGG R1,
6,371,008.8 m). Planar work over a city (KD-trees for snapping, grids for abuse checks) uses
an equirectangular projection around a reference latitude with the same radius; over a
city-sized area it agrees with the great-circle distance to a fraction of a percent, and
code that needs exact metres (or a bound that must hold) re-measures with
:func:`haversine_m`.

Like osmnx's ``utils_geo``: small, dependency-free (NumPy only), imported from anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_008.8
"""Mean earth radius (IUGG R1), metres."""

METRES_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180.0
"""Metres per degree of latitude (and of longitude at the equator) on that sphere."""

WALK_SPEED_M_S = 1.3
"""Default walking speed (about 4.7 km/h), the figure planners commonly use."""


def haversine_m(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> NDArray[Any]:
    """Great-circle distance in metres, vectorised over NumPy arrays (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0))))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points (plain floats, no NumPy)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(h, 1.0)))


def project_xy(lat: ArrayLike, lon: ArrayLike, lat0: float) -> NDArray[np.float64]:
    """Equirectangular ``[[x, y], ...]`` metres around latitude ``lat0``."""
    x = np.asarray(lon, dtype=np.float64) * METRES_PER_DEG_LAT * math.cos(math.radians(lat0))
    y = np.asarray(lat, dtype=np.float64) * METRES_PER_DEG_LAT
    return np.column_stack([x, y])
