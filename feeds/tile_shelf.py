"""The base map's tile archives per city and their MapLibre style.

:class:`TileShelf` opens each served city's vector-tile archive (``tiles.py``), cutting it
from the city's OSM extract off the event loop the first time it is asked for (one build
at a time); :func:`basemap_style` fills ``basemap_style.json`` with the archive's tile URL,
zooms, bounds, attribution and the self-hosted fonts. ``api/routes/tiles.py`` serves both.
"""

from __future__ import annotations

import asyncio
import json
from copy import deepcopy
from pathlib import Path
from typing import Any

from correspondance.cities import CityConfig
from feeds.tiles import TileArchive, build_tiles

STYLE_TEMPLATE = Path(__file__).resolve().parent / "basemap_style.json"
FONT_FILES = "/static/node_modules/@fontsource/noto-sans/files"
#: the font names the style's layers use → (weight, the unicode ranges of each file)
FONT_FACES = {"Noto Sans Regular": 400, "Noto Sans Bold": 700}
FONT_SUBSETS = {
    "latin": [
        "U+0000-00FF",
        "U+0131",
        "U+0152-0153",
        "U+02BB-02BC",
        "U+02C6",
        "U+02DA",
        "U+02DC",
        "U+2000-206F",
        "U+20AC",
        "U+2122",
        "U+2191",
        "U+2193",
        "U+2212",
        "U+2215",
        "U+FEFF",
        "U+FFFD",
    ],
    "latin-ext": [
        "U+0100-02BA",
        "U+02BD-02C5",
        "U+02C7-02CC",
        "U+02CE-02D7",
        "U+02DD-02FF",
        "U+1D00-1DBF",
        "U+1E00-1E9F",
        "U+1EF2-1EFF",
        "U+2020",
        "U+20A0-20AB",
        "U+20AD-20C0",
        "U+2113",
        "U+2C60-2C7F",
        "U+A720-A7FF",
    ],
}


class TileShelf:
    """The tile archive of each city, opened (or built) once per process."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.archives: dict[str, TileArchive] = {}
        self._lock = asyncio.Lock()  # one tile build at a time

    async def archive(self, city: CityConfig) -> TileArchive:
        """The city's tile archive, built (in a worker thread) the first time it is asked for."""
        archive = self.archives.get(city.id)
        if archive is not None:
            return archive
        async with self._lock:
            archive = self.archives.get(city.id)
            if archive is None:

                def load() -> TileArchive:
                    path, _ = build_tiles(
                        city.resolve(city.osm.path),
                        city.bbox,
                        self.cache_dir,
                        city.id,
                        attribution=" | ".join(city.attribution) or "© OpenStreetMap contributors",
                    )
                    return TileArchive(path)

                archive = self.archives[city.id] = await asyncio.to_thread(load)
        return archive


def _template() -> dict[str, Any]:
    template: dict[str, Any] = json.loads(STYLE_TEMPLATE.read_text(encoding="utf-8"))
    return template


def basemap_style(
    archive: TileArchive, city_id: str, origin: str, attribution: str
) -> dict[str, Any]:
    """The MapLibre style of a city's base map, every URL on ``origin`` (this server)."""
    style = deepcopy(_template())
    style["name"] = f"Correspondance base map ({city_id})"
    source = style["sources"]["basemap"]
    source["tiles"] = [
        f"{origin}/api/v1/cities/{city_id}/tiles/{{z}}/{{x}}/{{y}}.mvt?v={archive.key}"
    ]
    source["minzoom"] = archive.min_zoom
    source["maxzoom"] = archive.max_zoom
    source["bounds"] = list(archive.bounds)
    source["attribution"] = attribution
    style["font-faces"] = {
        name: [
            {
                "url": f"{origin}{FONT_FILES}/noto-sans-{subset}-{weight}-normal.woff2",
                "unicode-range": ranges,
            }
            for subset, ranges in FONT_SUBSETS.items()
        ]
        for name, weight in FONT_FACES.items()
    }
    return style
