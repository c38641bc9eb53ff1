"""The labelled base map: a MapLibre style and the vector tiles it draws, from our own OSM.

The tiles are cut at ``correspondance build`` (``feeds.tiles``, one PMTiles archive per city,
cached by a hash of the OSM file) and read into memory on first use; a server started without
a build makes them then. Text is drawn by MapLibre in the browser from a font file the app
serves (``@fontsource/noto-sans``, the style's ``font-faces``), so no glyph server is needed
and no request leaves the app.
"""

from __future__ import annotations

import gzip
import json
from copy import deepcopy
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from api.deps import State
from api.state import AppState
from correspondance.errors import InputError, UnknownCityError
from feeds.tiles import TileArchive, build_tiles

router = APIRouter(prefix="/api/v1", tags=["cities"])
MVT = "application/vnd.mapbox-vector-tile"
STYLE_TEMPLATE = Path(__file__).resolve().parents[2] / "feeds" / "basemap_style.json"
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
#: tiles and style are named by the archive's key, so a rebuilt map is a new URL
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_STYLE = "public, max-age=300"
MAX_TILE_ZOOM = 24  # beyond any zoom MapLibre asks for: a larger z is an error, not a miss


def _template() -> dict[str, Any]:
    template: dict[str, Any] = json.loads(STYLE_TEMPLATE.read_text(encoding="utf-8"))
    return template


async def get_archive(state: AppState, city_id: str) -> TileArchive:
    """The city's tile archive, built (off the event loop) the first time it is asked for."""
    city = state.cities.get(city_id)
    if city is None or city_id not in state.bases:
        served = ", ".join(sorted(state.bases)) or "none"
        raise UnknownCityError(f"unknown city {city_id!r}; this server serves: {served}")
    archive = state.tile_archives.get(city_id)
    if archive is not None:
        return archive
    async with state.tile_lock:
        archive = state.tile_archives.get(city_id)
        if archive is None:

            def load() -> TileArchive:
                path, _ = build_tiles(
                    city.resolve(city.osm.path),
                    city.bbox,
                    state.settings.cache_dir,
                    city.id,
                    attribution=" | ".join(city.attribution) or "© OpenStreetMap contributors",
                )
                return TileArchive(path)

            archive = state.tile_archives[city_id] = await run_in_threadpool(load)
    return archive


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


def _origin(request: Request) -> str:
    # Behind a trusted proxy uvicorn has already rewritten scheme and host, so this is the
    # address the browser used; MapLibre needs absolute URLs for tiles and fonts.
    return str(request.base_url).rstrip("/")


@router.get(
    "/cities/{city}/style.json",
    responses={
        200: {"description": "A MapLibre style (v8) drawing the city's base map."},
        404: {"description": "Unknown city."},
    },
)
async def style(city: str, request: Request, state: State) -> Response:
    """The MapLibre style of the city's labelled base map (streets, names, water, parks, rail,
    landmarks), drawing vector tiles and fonts served by this app only."""
    archive = await get_archive(state, city)
    config = state.cities[city]
    body = basemap_style(archive, city, _origin(request), " | ".join(config.attribution))
    return Response(
        json.dumps(body, separators=(",", ":")),
        media_type="application/json",
        headers={"Cache-Control": CACHE_STYLE, "ETag": f'"{archive.key}"'},
    )


@router.get(
    "/cities/{city}/tiles/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses={
        200: {"description": "A Mapbox Vector Tile (gzip-compressed).", "content": {MVT: {}}},
        204: {"description": "Nothing to draw on this tile (inside the world, outside the city)."},
        400: {"description": "z/x/y is not a tile."},
        404: {"description": "Unknown city."},
    },
)
async def tile(
    city: str,
    z: Annotated[int, PathParam(ge=0, le=MAX_TILE_ZOOM)],
    x: Annotated[int, PathParam(ge=0)],
    y: Annotated[int, PathParam(ge=0)],
    request: Request,
    state: State,
    v: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The archive's key, as the style names it: a new URL whenever the "
            "map is rebuilt, so a year of caching is safe. Any value is served.",
        ),
    ] = None,
) -> Response:
    """One vector tile of the city's base map (layers: water, parks, waterways, rail, streets,
    labels, landmarks). Cacheable for a year: its URL changes when the map is rebuilt."""
    if x >= 2**z or y >= 2**z:
        raise InputError(f"tile {z}/{x}/{y} does not exist: x and y must be below {2**z} at z{z}")
    archive = await get_archive(state, city)
    etag = f'"{archive.key}"'
    headers = {"Cache-Control": CACHE_IMMUTABLE, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    data = archive.find(z, x, y)
    if data is None:
        return Response(status_code=204, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
    else:
        data = gzip.decompress(data)
    return Response(data, media_type=MVT, headers=headers)
