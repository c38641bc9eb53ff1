"""The operator dashboard's API over real HTTP: congestion as GeoJSON with street names
(k-anonymous only), the public congestion layer and its change socket, incidents
(declare on streets, list, edit, end early), confirm / dismiss, the audit log, the
per-minute samples behind the charts and the time slider, and the offline API docs.

One Redis-backed server with live fusion (as in ``test_reports.py``), its own key prefix.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from report_helpers import (
    EDGES,
    LAKE,
    LISBON,
    REDIS_URL,
    delete_prefix,
    new_address,
    new_token,
    operator_token,
    post_report,
    report_at,
    report_settings,
    serve,
    wait_for,
)
from websockets.asyncio.client import connect

from correspondance.settings import REPO_ROOT, Settings
from correspondance.store import RedisStateStore
from crowdsource.dashboard import DashboardMetrics, DashboardSample, level_of
from crowdsource.operators import opposite_edges
from routing.base import CityBase

CITY = "porto-alegre"


class Running:
    def __init__(self, url: str, settings: Settings, token: str) -> None:
        self.url = url
        self.settings = settings
        self.token = token

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=bearer(self.token), timeout=10, **kwargs)

    def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", json=body, headers=bearer(self.token), timeout=10
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[Running]:
    settings = report_settings("redis", tmp_path_factory.mktemp("dashboard"))
    try:
        with serve(settings, poa_base) as url:
            yield Running(url, settings, operator_token(settings, url))
    finally:
        delete_prefix(settings.redis_prefix)


def username_of(api: Running) -> str:
    name: str = api.get("/api/v1/operators/me").json()["username"]
    return name


NEW_ENDPOINTS = [
    ("GET", "/api/v1/operators/congestion/geojson"),
    ("GET", "/api/v1/operators/congestion/history"),
    ("GET", "/api/v1/operators/metrics"),
    ("GET", "/api/v1/operators/incidents"),
    ("GET", "/api/v1/operators/incidents/0123456789abcdef"),
    ("PATCH", "/api/v1/operators/incidents/0123456789abcdef"),
    ("DELETE", "/api/v1/operators/incidents/0123456789abcdef"),
    ("GET", "/api/v1/operators/audit"),
]


@pytest.mark.parametrize(("method", "path"), NEW_ENDPOINTS)
def test_every_new_operator_endpoint_needs_a_token(api: Running, method: str, path: str) -> None:
    response = httpx.request(method, f"{api.url}{path}", json={"note": "x"}, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def test_congestion_comes_with_street_names_and_geometry_and_k_anonymous_only(
    api: Running, poa_base: CityBase
) -> None:
    drive = poa_base.streets["drive"]
    view, single = EDGES["view"]["edge"], EDGES["single"]["edge"]
    for _ in range(2):  # two contributors, two networks
        assert (
            post_report(api.url, report_at("view"), new_token(), new_address()).status_code == 202
        )
    assert post_report(api.url, report_at("single"), new_token(), new_address()).status_code == 202

    def shown() -> dict[int, dict[str, Any]]:
        body = api.get("/api/v1/operators/congestion/geojson").json()
        return {f["properties"]["edge"]: f for f in body["features"]}

    wait_for(lambda: view in shown(), timeout_s=5)
    body = api.get("/api/v1/operators/congestion/geojson").json()
    assert body["type"] == "FeatureCollection"
    assert body["k"] == 2
    features = {f["properties"]["edge"]: f for f in body["features"]}
    feature = features[view]
    expected_coords = [[round(x, 6), round(y, 6)] for x, y in drive.edge_coords(view).tolist()]
    assert feature["geometry"] == {"type": "LineString", "coordinates": expected_coords}
    props = feature["properties"]
    assert props["name"] == drive.names[int(drive.name_idx[view])]
    assert props["name"]  # a named downtown street
    assert props["contributors"] == 2
    assert props["closed"] is False
    assert props["multiplier"] > 1
    assert props["level"] == level_of(props["multiplier"])
    assert props["level"] >= 1
    assert props["operator_decision"] is None
    assert single not in features  # one voice: never shown
    assert body["congestion_index"] > 0
    assert body["congested_km"] > 0

    listed = api.get("/api/v1/operators/congestion").json()
    row = next(e for e in listed["edges"] if e["edge"] == view)
    assert row["name"] == props["name"]
    assert row["level"] == props["level"]

    public = httpx.get(f"{api.url}/api/v1/congestion", timeout=10)
    assert public.status_code == 200
    layer = public.json()
    public_props = {f["properties"]["edge"]: f["properties"] for f in layer["features"]}
    assert view in public_props
    assert single not in public_props
    assert "contributors" not in public_props[view]
    assert "operator_decision" not in public_props[view]
    # nothing about a report, a token or a contributor's position is in either answer
    for text in (public.text, json.dumps(body)):
        assert "report_id" not in text
        assert 'contributor"' not in text
        assert str(EDGES["view"]["at"][0]) not in text


def test_an_incident_on_chosen_streets_is_listed_edited_ended_and_audited(
    api: Running, poa_base: CityBase
) -> None:
    drive = poa_base.streets["drive"]
    edge = EDGES["lonely"]["edge"]
    declared = api.send(
        "POST",
        "/api/v1/operators/incidents",
        {"edges": [edge], "kind": "incident", "level": 2, "note": "crane", "expires_in_s": 3600},
    )
    assert declared.status_code == 201, declared.text
    incident = declared.json()
    incident_id = incident["incident_id"]
    assert edge in incident["edges"]
    lon, lat = drive.edge_coords(edge).mean(axis=0).tolist()
    assert incident["lat"] == pytest.approx(lat)
    assert incident["lon"] == pytest.approx(lon)

    listed = api.get("/api/v1/operators/incidents").json()
    mine = next(i for i in listed["incidents"] if i["incident_id"] == incident_id)
    assert mine["note"] == "crane"
    assert mine["streets"] == [drive.names[int(drive.name_idx[edge])]]
    assert mine["level"] == 2
    assert mine["suggestions_made"] == 0
    assert mine["suggestions_accepted"] == 0
    assert mine["trips_touched"] in (0, None)  # no trip follows these streets
    # it applies as declared: the fused map shows it, marked as declared
    wait_for(
        lambda: any(
            e["edge"] == edge and e["operator_decision"] == "declared"
            for e in api.get("/api/v1/operators/congestion").json()["edges"]
        ),
        timeout_s=5,
    )

    edited = api.send(
        "PATCH",
        f"/api/v1/operators/incidents/{incident_id}",
        {"kind": "closure", "note": "crane collapsed", "expires_in_s": 600},
    )
    assert edited.status_code == 200, edited.text
    after = edited.json()
    assert after["kind"] == "closure"
    assert after["level"] is None
    assert after["note"] == "crane collapsed"
    assert after["updated_by"] == username_of(api)
    assert after["declared_at"] == incident["declared_at"]
    assert after["expires_at"] < incident["expires_at"]
    wait_for(
        lambda: any(
            e["edge"] == edge and e["closed"]
            for e in api.get("/api/v1/operators/congestion").json()["edges"]
        ),
        timeout_s=5,
    )

    ended = api.send("DELETE", f"/api/v1/operators/incidents/{incident_id}")
    assert ended.status_code == 200, ended.text
    assert ended.json()["incident_id"] == incident_id
    gone = api.get(f"/api/v1/operators/incidents/{incident_id}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "unknown_incident"
    assert all(
        i["incident_id"] != incident_id
        for i in api.get("/api/v1/operators/incidents").json()["incidents"]
    )
    wait_for(
        lambda: all(
            e["edge"] != edge for e in api.get("/api/v1/operators/congestion").json()["edges"]
        ),
        timeout_s=5,
    )
    assert api.send("DELETE", f"/api/v1/operators/incidents/{incident_id}").status_code == 404
    assert (
        api.send("PATCH", f"/api/v1/operators/incidents/{incident_id}", {"note": "x"}).status_code
        == 404
    )

    entries = api.get("/api/v1/operators/audit").json()["entries"]
    trail = [e for e in entries if e["target"] == f"incident:{incident_id}"]
    assert [e["action"] for e in trail] == [
        "incident.ended",
        "incident.updated",
        "incident.declared",
    ]
    assert {e["operator"] for e in trail} == {username_of(api)}
    assert trail[1]["details"]["changes"] == ["expires_in_s", "kind", "note"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["at"]) for e in trail)


def test_confirm_and_dismiss_are_audited(api: Running) -> None:
    edge = EDGES["ttl"]["edge"]
    assert (
        api.send("POST", f"/api/v1/operators/edges/{edge}/confirm", {"level": 3}).status_code == 200
    )
    assert api.send("POST", f"/api/v1/operators/edges/{edge}/dismiss").status_code == 200
    entries = api.get("/api/v1/operators/audit", params={"limit": 50}).json()["entries"]
    trail = [e for e in entries if e["target"] == f"edge:{edge}"]
    assert [e["action"] for e in trail[:2]] == ["edge.dismissed", "edge.confirmed"]
    assert trail[1]["details"]["level"] == 3
    assert api.get("/api/v1/operators/audit", params={"limit": 0}).status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "closure"}, 400, "invalid_parameter"),
        (
            {"kind": "closure", "edges": [140], "lat": -30.03, "lon": -51.22},
            400,
            "invalid_parameter",
        ),
        ({"kind": "closure", "edges": []}, 400, "invalid_parameter"),
        ({"kind": "closure", "edges": [10**9]}, 404, "unknown_edge"),
        ({"kind": "closure", "edges": [140], "level": 2}, 400, "invalid_parameter"),
        ({"kind": "closure", "edges": list(range(201))}, 400, "invalid_parameter"),
    ],
    ids=["nowhere", "point-and-edges", "no-edges", "unknown-edge", "closure-level", "too-many"],
)
def test_bad_incidents_are_refused_with_a_code(
    api: Running, body: dict[str, Any], status: int, code: str
) -> None:
    response = api.send("POST", "/api/v1/operators/incidents", body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_bad_edits_are_refused_with_a_code(api: Running) -> None:
    declared = api.send(
        "POST",
        "/api/v1/operators/incidents",
        {"edges": [EDGES["privacy"]["edge"]], "kind": "closure"},
    ).json()
    path = f"/api/v1/operators/incidents/{declared['incident_id']}"
    for body in ({}, {"colour": "red"}, {"level": 9}, {"expires_in_s": 5}, {"note": "x" * 501}):
        response = api.send("PATCH", path, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == "invalid_parameter"
    leveled = api.send("PATCH", path, {"level": 2})  # a closure has no level
    assert leveled.status_code == 400
    assert "closure is total" in leveled.json()["error"]["message"]
    for weird in ("not-an-id", "x" * 64):
        assert api.get(f"/api/v1/operators/incidents/{weird}").status_code == 404
    assert api.send("DELETE", path).status_code == 200


def test_metrics_are_per_minute_and_k_thresholded(api: Running, poa_base: CityBase) -> None:
    now = int(time.time() // 60 * 60)
    edge = str(EDGES["fusion"]["edge"])
    samples = [
        DashboardSample(now - 7200, 9, 0.5, 1.0, 4, 10, 3, {edge: 1.8}),  # hours ago: not shown
        DashboardSample(now - 180, 5, 0.4, 0.8, 7, 20, 5, {edge: 1.8}),
        DashboardSample(now - 120, 1, 0.6, 1.2, 1, 21, 5, {edge: 0.0}),
        DashboardSample(now - 60, 0, 0.2, 0.4, 3, 25, 8, {}),
    ]

    async def record() -> None:
        async with RedisStateStore(REDIS_URL, prefix=api.settings.redis_prefix) as store:
            metrics = DashboardMetrics(store, CITY)
            for sample in samples:
                await metrics.record(sample)

    asyncio.run(record())
    body = api.get("/api/v1/operators/metrics", params={"hours": 1}).json()
    assert body["k"] == 2
    start = body["t"].index(now - 180)
    window = slice(start, start + 3)
    assert body["t"][window] == [now - 180, now - 120, now - 60]
    assert now - 7200 not in body["t"]
    assert body["reports_per_minute"][window] == [5, None, 0]  # 1 < k: null
    assert body["active_trips"][window] == [7, None, 3]
    assert body["congestion_index"][window] == [0.4, 0.6, 0.2]
    assert body["suggestions_made"][window] == [None, None, 4]  # first: no difference; 1 < k
    assert body["suggestions_accepted"][window] == [None, 0, 3]
    assert len({len(v) for v in body.values() if isinstance(v, list)}) == 1

    history = api.get("/api/v1/operators/congestion/history", params={"hours": 1}).json()
    frames = {f["t"]: f["edges"] for f in history["frames"]}
    assert frames[now - 180] == {edge: 1.8}
    assert frames[now - 120] == {edge: 0.0}
    assert frames[now - 60] == {}
    drawn = {f["properties"]["edge"] for f in history["features"]["features"]}
    assert int(edge) in drawn
    for hours in ("0", "7", "x"):
        response = api.get("/api/v1/operators/metrics", params={"hours": hours})
        assert response.status_code == 400, hours


def test_the_server_samples_each_minute_once(api: Running) -> None:
    # the sampler took this minute's sample at start-up (or the minute since)
    body = api.get("/api/v1/operators/metrics", params={"hours": 6}).json()
    assert body["t"], "no sample recorded by the server's own sampler"
    assert len(body["t"]) == len(set(body["t"]))


def test_the_congestion_socket_nudges_on_a_change(api: Running) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/ws/v1/congestion?city=" + CITY

    async def run() -> dict[str, Any]:
        async with connect(ws_url) as ws:
            await asyncio.sleep(0.3)  # subscribed
            declared = await asyncio.to_thread(
                api.send,
                "POST",
                "/api/v1/operators/incidents",
                {"edges": [EDGES["delete"]["edge"]], "kind": "closure"},
            )
            assert declared.status_code == 201
            message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await asyncio.to_thread(
                api.send, "DELETE", f"/api/v1/operators/incidents/{declared.json()['incident_id']}"
            )
            return message

    message = asyncio.run(run())
    assert message["type"] == "congestion.changed"
    assert message["city"] == CITY
    assert set(message) == {"type", "v", "city", "at"}


def test_an_unknown_city_socket_is_closed_4404(api: Running) -> None:
    async def run() -> tuple[dict[str, Any], int | None]:
        async with connect(api.url.replace("http://", "ws://") + "/ws/v1/congestion?city=x") as ws:
            first = json.loads(await ws.recv())
            await ws.wait_closed()
            return first, ws.close_code

    first, code = asyncio.run(run())
    assert first["code"] == "unknown_city"
    assert code == 4404


# -- API docs, offline ------------------------------------------------------------------------


def test_docs_and_redoc_load_only_pinned_local_assets(api: Running) -> None:
    package = json.loads((REPO_ROOT / "frontend" / "package.json").read_text())["dependencies"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["swagger-ui-dist"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["redoc"])
    for page in ("/docs", "/redoc"):
        response = httpx.get(f"{api.url}{page}", timeout=10)
        assert response.status_code == 200
        html = response.text
        assert "http://" not in html, page
        assert "https://" not in html, page
        assert "<script>" not in html  # no inline script: a strict CSP can run it
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
        assert assets, page
        for asset in assets:
            got = httpx.get(f"{api.url}{asset}", timeout=30)
            assert got.status_code == 200, asset
    swagger = httpx.get(f"{api.url}/docs", timeout=10).text
    assert 'data-openapi-url="/openapi.json"' in swagger
    assert "/static/node_modules/swagger-ui-dist/swagger-ui-bundle.js" in swagger
    assert "/docs/redoc.standalone.js" in httpx.get(f"{api.url}/redoc", timeout=10).text
    bundle = httpx.get(f"{api.url}/docs/redoc.standalone.js", timeout=30)
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "https://cdn.redoc.ly" not in bundle.text
    pinned = REPO_ROOT / "frontend/node_modules/redoc/bundles/redoc.standalone.js"
    logo, ours = "https://cdn.redoc.ly/redoc/logo-mini.svg", "/static/favicon.svg"
    assert len(bundle.content) == len(pinned.read_bytes()) - len(logo) + len(ours)


def test_the_dashboard_page_is_served(api: Running) -> None:
    page = httpx.get(f"{api.url}/operator", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    privacy = httpx.get(f"{api.url}/privacy", timeout=10)
    assert privacy.status_code == 200
    assert privacy.headers["content-type"].startswith("text/plain")
    assert privacy.text == (REPO_ROOT / "PRIVACY.md").read_text(encoding="utf-8")
    moved = httpx.get(f"{api.url}/dashboard", timeout=10)
    assert moved.status_code == 308
    assert moved.headers["location"] == "/operator"


def test_the_nearest_street_gives_its_name_and_directions(api: Running, poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    spot = EDGES["view"]
    response = httpx.get(
        f"{api.url}/api/v1/streets/nearest",
        params={"lat": spot["at"][0], "lon": spot["at"][1]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    street = response.json()
    nearest = drive.snap(spot["at"][0], spot["at"][1], 120.0).edge
    assert street["properties"]["edge"] == nearest
    assert street["properties"]["name"] == drive.names[int(drive.name_idx[nearest])]
    directions = street["properties"]["directions"]
    assert [d["edge"] for d in directions] == [nearest, *opposite_edges(drive, nearest)]
    # each direction's heading is its own bearing, tail to head
    for direction in directions:
        (lon1, lat1), (lon2, lat2) = drive.edge_coords(direction["edge"])[[0, -1]]
        north, east = lat2 - lat1, (lon2 - lon1) * math.cos(math.radians(lat1))
        bearing = math.degrees(math.atan2(east, north)) % 360
        assert abs((direction["heading"] - bearing + 180) % 360 - 180) < 1
    assert street["geometry"]["type"] == "LineString"
    for params, status, code in [
        ({"lat": LISBON[0], "lon": LISBON[1]}, 422, "outside_city"),
        ({"lat": LAKE[0], "lon": LAKE[1]}, 422, "no_street_nearby"),
        ({"lat": "north", "lon": 1}, 400, "invalid_parameter"),
        ({"lat": 91, "lon": 1}, 400, "invalid_parameter"),
    ]:
        bad = httpx.get(f"{api.url}/api/v1/streets/nearest", params=params, timeout=10)
        assert bad.status_code == status, (params, bad.text)
        assert bad.json()["error"]["code"] == code


def test_a_contributor_deletes_one_report_of_theirs_only(api: Running) -> None:
    mine, theirs = new_token(), new_token()
    first = post_report(api.url, report_at("attack"), mine, new_address()).json()["report_id"]
    second = post_report(api.url, report_at("attack", level=2), mine, new_address()).json()[
        "report_id"
    ]
    other = post_report(api.url, report_at("fusion"), theirs, new_address()).json()["report_id"]

    def ids(token: str) -> list[str]:
        body = httpx.get(
            f"{api.url}/api/v1/me/reports", headers={"X-Contributor-Token": token}, timeout=10
        ).json()
        return [r["report_id"] for r in body["reports"]]

    def delete(token: str, report_id: str) -> httpx.Response:
        return httpx.delete(
            f"{api.url}/api/v1/me/reports/{report_id}",
            headers={"X-Contributor-Token": token},
            timeout=10,
        )

    assert delete(mine, other).status_code == 404  # not theirs to delete
    assert ids(theirs) == [other]
    deleted = delete(mine, first)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": 1}
    assert ids(mine) == [second]
    again = delete(mine, first)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "unknown_report"
    assert delete("short", second).status_code == 400  # a malformed token
    assert delete(mine, "x" * 65).status_code == 400


def test_an_incident_moves_to_other_streets(api: Running, poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    first, second = EDGES["single"]["edge"], EDGES["confirm"]["edge"]
    declared = api.send(
        "POST", "/api/v1/operators/incidents", {"edges": [first], "kind": "closure"}
    ).json()
    moved = api.send(
        "PATCH", f"/api/v1/operators/incidents/{declared['incident_id']}", {"edges": [second]}
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert second in body["edges"]
    assert first not in body["edges"]
    lon, lat = drive.edge_coords(second).mean(axis=0).tolist()
    assert body["lat"] == pytest.approx(lat)
    assert body["lon"] == pytest.approx(lon)
    assert body["kind"] == "closure"  # what was not sent stays
    unknown = api.send(
        "PATCH", f"/api/v1/operators/incidents/{declared['incident_id']}", {"edges": [10**9]}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_edge"
    assert api.send("DELETE", f"/api/v1/operators/incidents/{declared['incident_id']}").is_success
