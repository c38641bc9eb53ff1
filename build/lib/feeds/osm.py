"""OpenStreetMap streets: PBF/XML extract → one osmnx graph per street mode.

osmnx reads OSM XML and filters by network type only when it queries Overpass, so we
apply osmnx's *own* network filters (``osmnx._overpass._get_network_filter``) while
streaming the PBF with pyosmium, write one filtered XML per mode, and let osmnx build,
truncate and simplify each graph exactly as it would from Overpass data.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import networkx as nx
import osmium
import osmnx as ox
from osmnx import _overpass

from feeds.errors import FeedError

StreetMode = Literal["walk", "bike", "drive"]
STREET_MODES: tuple[StreetMode, ...] = ("walk", "bike", "drive")

# Tags kept on edges: osmnx's defaults plus what routing needs for access and speeds.
EDGE_TAGS = sorted(
    {*ox.settings.useful_tags_way, "oneway:bicycle", "cycleway", "foot", "bicycle", "surface"}
)

_FILTER_CLAUSE = re.compile(r'\["(?P<key>[^"]+)"(?:(?P<op>!~)"(?P<pattern>[^"]*)")?\]')


@dataclass(frozen=True)
class TagFilter:
    """One mode's way filter, parsed from osmnx's Overpass filter string."""

    required: tuple[str, ...]
    excluded: tuple[tuple[str, re.Pattern[str]], ...]

    def matches(self, tags: dict[str, str]) -> bool:
        """Whether a way with these tags belongs to the mode's network."""
        if any(key not in tags for key in self.required):
            return False
        return not any(key in tags and pattern.search(tags[key]) for key, pattern in self.excluded)


def mode_filter(mode: StreetMode) -> TagFilter:
    """Parse osmnx's network filter for ``mode`` into a :class:`TagFilter`."""
    text = _overpass._get_network_filter(mode)
    required: list[str] = []
    excluded: list[tuple[str, re.Pattern[str]]] = []
    for clause in _FILTER_CLAUSE.finditer(text):
        if clause["op"] is None:
            required.append(clause["key"])
        else:
            excluded.append((clause["key"], re.compile(clause["pattern"])))
    return TagFilter(tuple(required), tuple(excluded))


def _scan_ways(osm_path: Path, filters: dict[StreetMode, TagFilter]) -> dict[StreetMode, set[int]]:
    ways: dict[StreetMode, set[int]] = {mode: set() for mode in filters}
    for way in osmium.FileProcessor(str(osm_path), osmium.osm.WAY):
        tags = {tag.k: tag.v for tag in way.tags}
        if "highway" not in tags:
            continue
        for mode, tag_filter in filters.items():
            if tag_filter.matches(tags):
                ways[mode].add(way.id)
    return ways


def _write_mode_xml(osm_path: Path, way_ids: set[int], out: Path) -> int:
    """Write the ways in ``way_ids`` and the nodes they use to an OSM XML file."""
    node_ids: set[int] = set()
    for way in osmium.FileProcessor(str(osm_path), osmium.osm.WAY):
        if isinstance(way, osmium.osm.Way) and way.id in way_ids:
            node_ids.update(n.ref for n in way.nodes)
    writer = osmium.SimpleWriter(str(out), overwrite=True)
    try:
        for obj in osmium.FileProcessor(str(osm_path), osmium.osm.NODE | osmium.osm.WAY):
            if isinstance(obj, osmium.osm.Node) and obj.id in node_ids:
                writer.add_node(obj)
            elif isinstance(obj, osmium.osm.Way) and obj.id in way_ids:
                writer.add_way(obj)
    finally:
        writer.close()
    return len(way_ids)


def load_street_graphs(
    osm_path: Path,
    modes: Iterable[StreetMode] = STREET_MODES,
    progress: Callable[[str], None] | None = None,
) -> dict[StreetMode, nx.MultiDiGraph]:
    """Build one simplified osmnx graph per street mode from an OSM extract.

    Parameters
    ----------
    osm_path
        An ``.osm.pbf`` or ``.osm`` (XML) file.
    modes
        Which of walk, bike, drive to build.
    progress
        Called with a short message before each long step.

    Returns
    -------
    dict
        mode → ``networkx.MultiDiGraph`` as osmnx returns it (largest weakly connected
        component; walk edges in both directions, bike and drive honour one-way tags).

    Raises
    ------
    FeedError
        If the file is missing, unreadable, or yields no street for a mode.
    """
    say = progress or (lambda _msg: None)
    if not osm_path.is_file():
        raise FeedError(f"{osm_path}: OSM file not found")
    filters = {mode: mode_filter(mode) for mode in modes}
    ox.settings.useful_tags_way = EDGE_TAGS
    ox.settings.log_console = False
    say(f"scanning {osm_path.name}")
    try:
        way_ids = _scan_ways(osm_path, filters)
    except RuntimeError as exc:  # pyosmium reports corrupt input as RuntimeError
        raise FeedError(f"{osm_path}: not a readable OSM file ({exc})") from exc
    graphs: dict[StreetMode, nx.MultiDiGraph] = {}
    with tempfile.TemporaryDirectory(prefix="corr-osm-") as tmp:
        for mode in filters:
            if not way_ids[mode]:
                raise FeedError(f"{osm_path}: no street usable by mode {mode!r}")
            xml_path = Path(tmp) / f"{mode}.osm"
            _write_mode_xml(osm_path, way_ids[mode], xml_path)
            say(f"building {mode} network ({len(way_ids[mode]):,} ways)")
            graphs[mode] = ox.graph_from_xml(xml_path, bidirectional=(mode == "walk"))
    return graphs
