"""GET /api/v1/places over real HTTP: answers, the OpenAPI document, and hostile input."""

from __future__ import annotations

import time

import httpx
import pytest

CENTRE = "-30.0346,-51.2177"


def places(api_url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{api_url}/api/v1/places", params=params, timeout=30)


def test_search_answers_places_of_every_kind_with_their_fields(api_url: str) -> None:
    response = places(api_url, q="estacao mercado", near=CENTRE, limit="3")
    assert response.status_code == 200
    body = response.json()
    assert body["city"] == "porto-alegre"
    assert body["query"] == "estacao mercado"
    first = body["places"][0]
    assert first["kind"] == "stop"
    assert first["name"] == "ESTACAO MERCADO"
    assert first["category"] == "station"
    assert "LINHA1" in first["secondary"]
    assert first["ids"] == ["MR"]
    assert first["distance_m"] == pytest.approx(1375, abs=20)
    assert len(body["places"]) <= 3
    kinds = {
        p["kind"]
        for q in ("avenida ipiranga", "rua alfa 191", "bará do mercado")
        for p in places(api_url, q=q, limit="50").json()["places"]
    }
    assert kinds == {"stop", "street", "poi", "address"}


def test_accents_and_typos_over_http(api_url: str) -> None:
    plain = places(api_url, q="cristovao colombo", near=CENTRE).json()["places"]
    accented = places(api_url, q="Cristóvão Colombo", near=CENTRE).json()["places"]
    assert [p["ids"] for p in plain] == [p["ids"] for p in accented]
    typo = places(api_url, q="av ipirnga").json()["places"]
    assert "Avenida Ipiranga" in [p["name"] for p in typo]


def test_nearer_ranks_higher(api_url: str) -> None:
    north = places(api_url, q="beco 1", near="-30.00,-51.18", limit="5").json()["places"]
    south = places(api_url, q="beco 1", near="-30.10,-51.20", limit="5").json()["places"]
    # many alleys share the name: the nearest come first (a small prior by street class
    # may reorder two at similar distances)
    for found in (north, south):
        distances = [p["distance_m"] for p in found]
        assert distances[0] <= sorted(distances)[1], distances
    assert north[0]["ids"] != south[0]["ids"]


def test_unknown_city_is_404(api_url: str) -> None:
    response = places(api_url, q="rua", city="atlantis")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_city"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "invalid_parameter"),  # q missing
        ({"q": ""}, "empty_query"),
        ({"q": "   "}, "empty_query"),
        ({"q": "%%%"}, "empty_query"),
        ({"q": "a" * 10_000}, "query_too_long"),
        ({"q": "rua", "near": "NaN,NaN"}, "non_finite_number"),
        ({"q": "rua", "near": "-30,Infinity"}, "non_finite_number"),
        ({"q": "rua", "near": "95,0"}, "out_of_range"),
        ({"q": "rua", "near": "here"}, "invalid_parameter"),
        ({"q": "rua", "near": "1" * 100}, "invalid_parameter"),
        ({"q": "rua", "limit": str(10**9)}, "out_of_range"),
        ({"q": "rua", "limit": "0"}, "out_of_range"),
        ({"q": "rua", "limit": "-5"}, "out_of_range"),
        ({"q": "rua", "limit": "1e999"}, "invalid_parameter"),
        ({"q": "rua", "limit": "ten"}, "invalid_parameter"),
    ],
)
def test_hostile_input_gets_a_400_with_a_machine_code(
    api_url: str, params: dict[str, str], code: str
) -> None:
    response = places(api_url, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert len(response.content) < 1_000  # the 10 KB query is not echoed back


def test_answers_are_fast_while_typing(api_url: str) -> None:
    typed = "avenida borges de medeiros"
    places(api_url, q="a")  # a first connection
    took = []
    with httpx.Client(timeout=30) as http:
        for n in range(1, len(typed) + 1):
            started = time.perf_counter()
            response = http.get(f"{api_url}/api/v1/places", params={"q": typed[:n], "near": CENTRE})
            took.append(time.perf_counter() - started)
            assert response.status_code == 200
    assert "Avenida Borges de Medeiros" in [p["name"] for p in response.json()["places"]]
    # over HTTP on a shared two-core machine, where one answer may wait for the scheduler:
    # the median is the claim, the p95 over 1,000 prefixes is benchmarks/bench_places.py's
    assert sorted(took)[len(took) // 2] < 0.05, took


def test_openapi_documents_the_route(api_url: str) -> None:
    document = httpx.get(f"{api_url}/openapi.json", timeout=30).json()
    operation = document["paths"]["/api/v1/places"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {"q", "city", "near", "limit"}
    assert parameters["q"]["required"] is True
    assert set(operation["responses"]) >= {"200", "400", "404"}
    schema = document["components"]["schemas"]["PlaceMatchOut"]
    assert set(schema["required"]) >= {"kind", "name", "secondary", "lat", "lon", "ids"}
    assert schema["properties"]["kind"]["enum"] == ["stop", "street", "poi", "address"]
