"""Points of interest from an OSM extract that routing needs: car parks (park & ride).

A car park is a node or a closed way tagged ``amenity=parking`` (or ``park_ride`` set to
anything but ``no``); ways are reduced to the mean of their nodes. Private car parks
(``access=private|no``) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import osmium
from numpy.typing import NDArray

from feeds.errors import FeedError


@dataclass(frozen=True, eq=False)
class Parkings:
    """Car parks: coordinates, names, and whether they are tagged park & ride."""

    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    name: tuple[str, ...]
    park_ride: NDArray[np.bool_]


def _is_public_parking(tags: dict[str, str]) -> bool:
    if tags.get("amenity") != "parking" and tags.get("park_ride", "no") == "no":
        return False
    return tags.get("access", "yes") not in ("private", "no")


def load_parkings(osm_path: Path) -> Parkings:
    """Every public car park in an OSM extract.

    Raises
    ------
    FeedError
        If the file is missing or unreadable.
    """
    if not osm_path.is_file():
        raise FeedError(f"{osm_path}: OSM file not found")
    lat: list[float] = []
    lon: list[float] = []
    names: list[str] = []
    pr: list[bool] = []
    try:
        processor = osmium.FileProcessor(str(osm_path)).with_locations()
        for obj in processor:
            tags = {t.k: t.v for t in obj.tags}
            if not tags or not _is_public_parking(tags):
                continue
            if isinstance(obj, osmium.osm.Node):
                lat.append(obj.location.lat)
                lon.append(obj.location.lon)
            elif isinstance(obj, osmium.osm.Way):
                points = [(n.location.lat, n.location.lon) for n in obj.nodes if n.location.valid()]
                if not points:
                    continue
                lat.append(float(np.mean([p[0] for p in points])))
                lon.append(float(np.mean([p[1] for p in points])))
            else:
                continue
            names.append(tags.get("name", ""))
            pr.append(tags.get("park_ride", "no") != "no")
    except RuntimeError as exc:
        raise FeedError(f"{osm_path}: not a readable OSM file ({exc})") from exc
    return Parkings(np.array(lat), np.array(lon), tuple(names), np.array(pr, dtype=bool))
