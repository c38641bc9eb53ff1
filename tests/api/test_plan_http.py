"""The plan API over real HTTP: good answers and every kind of bad input."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

CENTRE = "-30.0346,-51.2177"
EAST = "-30.0277,-51.1793"
DEPART = "2019-05-15T13:00:00"


def plan(api_url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{api_url}/api/v1/plan", params=params, timeout=30)


def test_plan_returns_walk_and_bus_itinerary_with_geometry(api_url: str) -> None:
    response = plan(api_url, **{"from": CENTRE, "to": EAST, "depart": DEPART})
    assert response.status_code == 200
    body = response.json()
    assert body["city"] == "porto-alegre"
    assert body["depart"] == "2019-05-15T13:00:00-03:00"
    transit = [
        it
        for it in body["itineraries"]
        if any(leg["mode"] in ("bus", "rail") for leg in it["legs"])
    ]
    assert transit, body
    best = transit[0]
    modes = [leg["mode"] for leg in best["legs"]]
    assert modes[0] == "walk"
    assert modes[-1] == "walk"
    assert "bus" in modes
    for leg in best["legs"]:
        assert len(leg["geometry"]["coordinates"]) >= 2
        assert dt.datetime.fromisoformat(leg["arrival"]) >= dt.datetime.fromisoformat(
            leg["departure"]
        )
    bus = next(leg for leg in best["legs"] if leg["mode"] == "bus")
    assert bus["route_short_name"]
    assert bus["trip_id"]
    assert bus["from"]["stop_id"]
    # legs chain in time and place
    for before, after in zip(best["legs"], best["legs"][1:], strict=False):
        assert before["arrival"] == after["departure"]
        assert before["to"] == after["from"]
    assert dt.datetime.fromisoformat(best["departure"]) >= dt.datetime.fromisoformat(body["depart"])


def test_depart_defaults_to_city_service_date(api_url: str) -> None:
    response = plan(api_url, **{"from": CENTRE, "to": EAST})
    assert response.status_code == 200
    assert response.json()["depart"] == "2019-05-15T13:00:00-03:00"


def test_explicit_offset_is_honoured(api_url: str) -> None:
    response = plan(api_url, **{"from": CENTRE, "to": EAST, "depart": "2019-05-15T16:00:00Z"})
    assert response.status_code == 200
    assert response.json()["depart"] == "2019-05-15T13:00:00-03:00"


@pytest.mark.parametrize(
    ("params", "status", "code", "fragment"),
    [
        ({"from": "48.85,2.35", "to": EAST}, 422, "outside_city", "outside Porto Alegre"),
        ({"from": CENTRE, "to": "-30.03,-51.255"}, 422, "no_street_nearby", "no walk street"),
        (
            {"from": CENTRE, "to": EAST, "depart": "2020-06-10T10:00:00"},
            422,
            "date_out_of_service",
            "outside the feeds' service period",
        ),
        ({"from": "abc", "to": EAST}, 400, "invalid_parameter", "'from' must be 'LAT,LON'"),
        ({"from": "95,10", "to": EAST}, 400, "invalid_parameter", "not a valid coordinate"),
        ({"from": CENTRE, "to": EAST, "depart": "tomorrow"}, 400, "invalid_parameter", "ISO 8601"),
        ({"to": EAST}, 400, "invalid_parameter", "from: Field required"),
        ({"from": CENTRE, "to": EAST, "modes": "teleport"}, 400, "invalid_parameter", "teleport"),
        ({"from": CENTRE, "to": EAST, "city": "atlantis"}, 404, "unknown_city", "atlantis"),
        ({"from": "1" * 80, "to": EAST}, 400, "invalid_parameter", "from"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    api_url: str, params: dict[str, str], status: int, code: str, fragment: str
) -> None:
    response = plan(api_url, **params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]


def test_unknown_route_is_json_404(api_url: str) -> None:
    response = httpx.get(f"{api_url}/api/v1/nothing-here", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cities_basemap_and_stops(api_url: str) -> None:
    cities = httpx.get(f"{api_url}/api/v1/cities", timeout=5).json()["cities"]
    assert [c["id"] for c in cities] == ["porto-alegre"]
    assert cities[0]["default"] is True
    assert cities[0]["default_date"] == "2019-05-15"
    basemap = httpx.get(f"{api_url}/api/v1/cities/porto-alegre/basemap", timeout=30)
    assert basemap.headers["content-type"] == "application/geo+json"
    features = basemap.json()["features"]
    assert len(features) > 10_000
    assert {f["properties"]["highway"] for f in features} >= {"primary", "residential"}
    stops = httpx.get(f"{api_url}/api/v1/cities/porto-alegre/stops", timeout=30).json()
    assert 1000 < len(stops["features"]) < 4010  # only stops inside the city's extent
    missing = httpx.get(f"{api_url}/api/v1/cities/atlantis/basemap", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_city"


def test_openapi_docs_served(api_url: str) -> None:
    assert httpx.get(f"{api_url}/docs", timeout=5).status_code == 200
    spec = httpx.get(f"{api_url}/openapi.json", timeout=5).json()
    assert "/api/v1/plan" in spec["paths"]
