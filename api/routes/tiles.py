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
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from api.deps import State
from api.state import AppState
from correspondance.errors import InputError, UnknownCityError
from feeds.tile_shelf import basemap_style
from feeds.tiles import TileArchive

router = APIRouter(prefix="/api/v1", tags=["cities"])
MVT = "application/vnd.mapbox-vector-tile"
#: tiles and style are named by the archive's key, so a rebuilt map is a new URL
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_STYLE = "public, max-age=300"
MAX_TILE_ZOOM = 24  # beyond any zoom MapLibre asks for: a larger z is an error, not a miss


async def get_archive(state: AppState, city_id: str) -> TileArchive:
    """The served city's tile archive (``feeds.tile_shelf``; 404 ``unknown_city``)."""
    city = state.cities.get(city_id)
    if city is None or city_id not in state.bases:
        served = ", ".join(sorted(state.bases)) or "none"
        raise UnknownCityError(f"unknown city {city_id!r}; this server serves: {served}")
    return await state.tile_shelf.archive(city)


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
