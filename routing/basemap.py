"""The base map of a city: its walk and drive street lines as one GeoJSON document.

``GET /api/v1/cities/{city}/basemap`` serves it (no external tile server is used); it is
drawn from the base's street networks (CSR arrays), so it lives beside them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from routing.base import CityBase
from routing.streets import HIGHWAY_CLASSES


def basemap_geojson(base: CityBase) -> bytes:
    """Street lines of the walk and drive networks as GeoJSON (one feature per way piece).

    Each undirected street is emitted once; coordinates are rounded to ~1 m.
    """
    features: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for mode in ("drive", "walk"):
        net = base.streets[mode]
        for e in range(net.n_edges):
            key = (int(min(net.tail[e], net.head[e])), int(max(net.tail[e], net.head[e])))
            key = (key[0] * 2 + (mode == "walk"), key[1])
            if key in seen:
                continue
            seen.add(key)
            coords = np.round(net.edge_coords(e), 5).tolist()
            name = net.names[int(net.name_idx[e])] or None
            features.append(
                {
                    "type": "Feature",
                    "properties": {"highway": HIGHWAY_CLASSES[int(net.highway[e])], "name": name},
                    "geometry": {"type": "LineString", "coordinates": coords},
                }
            )
    return json.dumps(
        {"type": "FeatureCollection", "features": features}, separators=(",", ":")
    ).encode()


def stops_geojson(base: CityBase) -> bytes:
    """Transit stops inside the city's extent, as GeoJSON points (id and name)."""
    tt = base.timetable
    features = [
        {
            "type": "Feature",
            "properties": {"stop_id": str(tt.stop_ids[i]), "stop_name": str(tt.stop_names[i])},
            "geometry": {
                "type": "Point",
                "coordinates": [round(float(tt.stop_lon[i]), 6), round(float(tt.stop_lat[i]), 6)],
            },
        }
        for i in range(tt.n_stops)
        if base.city.contains(float(tt.stop_lat[i]), float(tt.stop_lon[i]))
    ]
    return json.dumps(
        {"type": "FeatureCollection", "features": features}, separators=(",", ":")
    ).encode()
