"""Reserved bus lanes from an OSM extract: which ways have one, in which direction.

Buses on a reserved lane do not sit in the traffic of the general lanes, so routing exempts
those street edges from congestion (``routing.transit_streets``). Tags read (OSM wiki
"Key:busway", "Lanes"; ``psv`` lanes admit buses too):

- ``busway`` / ``busway:both`` = ``lane``: both directions (a one-way street: its direction);
  ``opposite_lane``: against the way's direction;
- ``busway:right`` = ``lane``: the way's direction; ``busway:left`` = ``lane``: against it on
  a two-way street (right-hand traffic), with it on a one-way street; ``*=opposite_lane``:
  against it;
- ``lanes:bus`` / ``lanes:psv`` (a count > 0) and ``bus:lanes`` / ``psv:lanes`` (a lane
  marked ``designated`` or ``yes``): both directions (a one-way street: its direction);
  their ``:forward`` / ``:backward`` forms: that direction only.

Both bundled cities drive on the right; left-hand traffic would swap ``busway:left`` and
``busway:right``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import osmium

from feeds.errors import FeedError


@dataclass(frozen=True)
class BusLaneWay:
    """One way with a reserved bus lane: its directions and its node coordinates (lon, lat)
    in way order, so a compiled street edge can tell whether it runs with the way."""

    way_id: int
    forward: bool
    backward: bool
    coords: tuple[tuple[float, float], ...]


def _count(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _designated(value: str) -> bool:
    return any(lane.strip() in ("designated", "yes") for lane in value.split("|"))


def bus_lane_directions(tags: dict[str, str]) -> tuple[bool, bool]:
    """(forward, backward): whether the way has a bus lane with / against its direction."""
    oneway = tags.get("oneway", "no") in ("yes", "true", "1")
    forward = backward = False

    def both() -> None:
        nonlocal forward, backward
        forward = True
        backward = backward or not oneway

    for key in ("busway", "busway:both"):
        if tags.get(key) == "lane":
            both()
        elif tags.get(key) == "opposite_lane":
            backward = True
    if tags.get("busway:right") == "lane":
        forward = True
    if tags.get("busway:left") == "lane":
        if oneway:
            forward = True
        else:
            backward = True
    if "opposite_lane" in (tags.get("busway:right"), tags.get("busway:left")):
        backward = True
    for vehicle in ("bus", "psv"):
        if _count(tags.get(f"lanes:{vehicle}", "0")) > 0 or _designated(
            tags.get(f"{vehicle}:lanes", "")
        ):
            both()
        if _count(tags.get(f"lanes:{vehicle}:forward", "0")) > 0 or _designated(
            tags.get(f"{vehicle}:lanes:forward", "")
        ):
            forward = True
        if _count(tags.get(f"lanes:{vehicle}:backward", "0")) > 0 or _designated(
            tags.get(f"{vehicle}:lanes:backward", "")
        ):
            backward = True
    return forward, backward


def load_bus_lanes(osm_path: Path) -> dict[int, BusLaneWay]:
    """Every way of an OSM extract with a reserved bus lane, by way id.

    Raises
    ------
    FeedError
        If the file is missing or unreadable.
    """
    if not osm_path.is_file():
        raise FeedError(f"{osm_path}: OSM file not found")
    found: dict[int, BusLaneWay] = {}
    try:
        processor = osmium.FileProcessor(str(osm_path)).with_locations()
        for way in processor:
            if not isinstance(way, osmium.osm.Way):
                continue
            tags = {t.k: t.v for t in way.tags}
            if "highway" not in tags:
                continue
            forward, backward = bus_lane_directions(tags)
            if not (forward or backward):
                continue
            coords = tuple(
                (n.location.lon, n.location.lat) for n in way.nodes if n.location.valid()
            )
            found[int(way.id)] = BusLaneWay(int(way.id), forward, backward, coords)
    except (RuntimeError, OSError) as exc:
        raise FeedError(f"{osm_path}: cannot read OSM data ({exc})") from exc
    return found
