"""The base map over HTTP: the MapLibre style, the vector tiles and the fonts it names, all on
this server; cache headers; hostile tile addresses answered 4xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from feeds.tiles import LAYERS, MAX_ZOOM, MIN_ZOOM, tile_range
from tests.mvt import decode_tile

CITY = "porto-alegre"
# Praça da Matriz / Rua Duque de Caxias, downtown Porto Alegre, at z15
DOWNTOWN_Z15 = tile_range((-51.2300, -30.0330, -51.2300, -30.0330), 15)[:2]


@pytest.fixture(scope="module")
def style(api_url: str) -> dict[str, Any]:
    r = httpx.get(f"{api_url}/api/v1/cities/{CITY}/style.json", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "public, max-age=300"
    body: dict[str, Any] = r.json()
    return body


def _urls(node: object) -> list[str]:
    if isinstance(node, str):
        return [node] if "://" in node else []
    if isinstance(node, dict):
        return [u for v in node.values() for u in _urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in _urls(v)]
    return []


def test_style_names_only_this_server(api_url: str, style: dict[str, Any]) -> None:
    assert style["version"] == 8
    urls = _urls(style)
    assert urls
    assert all(u.startswith(f"{api_url}/") for u in urls), urls
    assert "glyphs" not in style  # text is drawn from the font files below, in the browser
    source = style["sources"]["basemap"]
    assert (source["minzoom"], source["maxzoom"]) == (MIN_ZOOM, MAX_ZOOM)
    assert "OpenStreetMap" in source["attribution"]
    used = {layer["source-layer"] for layer in style["layers"] if "source-layer" in layer}
    assert used <= set(LAYERS)
    assert {"streets", "water", "parks", "rail", "landmarks", "labels"} <= used
    fonts = {f for layer in style["layers"] for f in layer.get("layout", {}).get("text-font", [])}
    assert fonts
    assert fonts <= set(style["font-faces"])
    for faces in style["font-faces"].values():
        for face in faces:
            r = httpx.get(face["url"])
            assert r.status_code == 200, face["url"]
            assert r.content[:4] == b"wOF2", face["url"]


def test_a_tile_is_gzip_mvt_with_named_streets_and_cached_by_key(
    api_url: str, style: dict[str, Any]
) -> None:
    template = style["sources"]["basemap"]["tiles"][0]
    key = template.rsplit("?v=", 1)[1]
    x, y = DOWNTOWN_Z15
    url = template.replace("{z}", "15").replace("{x}", str(x)).replace("{y}", str(y))
    with httpx.Client() as client:
        r = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["etag"] == f'"{key}"'
        layers = decode_tile(r.content)  # httpx has undone the gzip
        names = {f.properties.get("name") for f in layers["streets"].features}
        assert "Rua Duque de Caxias" in names
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == r.content
        again = client.get(url, headers={"If-None-Match": f'"{key}"'})
        assert again.status_code == 304
        assert again.content == b""
        assert client.get(url, headers={"If-None-Match": '"old"'}).status_code == 200


def test_tiles_outside_the_city_are_empty_not_errors(api_url: str) -> None:
    r = httpx.get(f"{api_url}/api/v1/cities/{CITY}/tiles/15/0/0.mvt")
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["cache-control"].startswith("public")
    assert httpx.get(f"{api_url}/api/v1/cities/{CITY}/tiles/0/0/0.mvt").status_code == 204


@pytest.mark.parametrize(
    "zxy",
    [
        "3/8/0",  # x past the world at z3
        "3/0/8",
        "25/0/0",  # deeper than any map zooms
        "-1/0/0",
        "15/-3/5",
        "15/abc/5",
        "15/1.5/5",
        "99999999999999999999999/0/0",
        "15/99999999999999999999999999999/0",
        "15/%00/1",
    ],
)
def test_hostile_tile_addresses_are_400(api_url: str, zxy: str) -> None:
    r = httpx.get(f"{api_url}/api/v1/cities/{CITY}/tiles/{zxy}.mvt")
    assert r.status_code == 400, (zxy, r.status_code, r.text)
    assert r.json()["error"]["code"] == "invalid_parameter"


@pytest.mark.parametrize(
    "path",
    ["tiles/15/1/2", "tiles/15/1/2.png", "tiles/15/1/2/3.mvt", "tiles/..%2F..%2Fetc/1/2.mvt"],
)
def test_other_tile_paths_are_404(api_url: str, path: str) -> None:
    r = httpx.get(f"{api_url}/api/v1/cities/{CITY}/{path}")
    assert r.status_code == 404, (path, r.status_code)


def test_unknown_city_is_404_with_its_code(api_url: str) -> None:
    for path in ("style.json", "tiles/15/0/0.mvt"):
        r = httpx.get(f"{api_url}/api/v1/cities/atlantis/{path}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_city"


def test_tiles_decode_at_every_zoom_of_the_city(api_url: str) -> None:
    """One tile per zoom, at the city centre: every zoom answers a drawable tile."""
    for zoom in range(MIN_ZOOM, MAX_ZOOM + 1):
        x, y, _, _ = tile_range((-51.2200, -30.0350, -51.2200, -30.0350), zoom)
        r = httpx.get(f"{api_url}/api/v1/cities/{CITY}/tiles/{zoom}/{x}/{y}.mvt")
        assert r.status_code == 200, zoom
        streets = decode_tile(r.content)["streets"].features
        assert streets
        assert all(f.kind == "line" for f in streets)
        assert json.dumps([f.properties for f in streets])  # plain strings throughout
