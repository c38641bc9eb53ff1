"""Poisoned requests (issue #11, findings 1 and 5) get a 400 with a machine code, never a 500.

Each case of finding 5 used to answer 500 and reset the client's keep-alive connection;
finding 1's year-9999 trip used to be accepted (201) and then break live trips. All run
against one real server (uvicorn in a thread, embedded store) on one keep-alive client, so
a reset connection would show as a new one.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from report_helpers import TOKEN_HEADER, new_token
from trip_helpers import DEMO_FROM, DEMO_TO, InThread, serve_in_thread, trip_settings

from routing.base import CityBase

Body = dict[str, Any]
DATE = re.compile(r"\d{4}-\d{2}-\d{2}T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[InThread]:
    settings = trip_settings(tmp_path_factory.mktemp("edge"), live_feeds=False)
    with serve_in_thread(settings, poa_base) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: InThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def car_itinerary(http: httpx.Client) -> Body:
    response = http.get(
        "/api/v1/plan",
        params={"from": DEMO_FROM, "to": DEMO_TO, "depart": "2019-05-15T13:00:00", "modes": "car"},
    )
    assert response.status_code == 200, response.text
    for itinerary in response.json()["itineraries"]:
        if any(leg["drive_edges"] for leg in itinerary["legs"]):
            return dict(itinerary)
    raise AssertionError("no car itinerary with drive edges")


def refused(response: httpx.Response, code: str, status: int = 400) -> str:
    """The error message, after checking the status and the machine code."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return str(error["message"])


def same_connection(http: httpx.Client) -> None:
    """The server kept the keep-alive connection (a 500 from a crash used to reset it)."""
    pool = http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1, pool.connections


def redated(itinerary: Body, day: str) -> Body:
    """The itinerary with every date-time moved to ``day`` (same clock times and offsets)."""
    text = DATE.sub(f"{day}T", json.dumps(itinerary))
    return dict(json.loads(text))


# -- plan: depart --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depart",
    ["9999-12-31T23:59:59", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"],
)
def test_a_depart_at_the_ends_of_the_calendar_is_out_of_range(
    http: httpx.Client, depart: str
) -> None:
    response = http.get("/api/v1/plan", params={"from": DEMO_FROM, "to": DEMO_TO, "depart": depart})
    message = refused(response, "out_of_range")
    assert message.startswith("'depart'")
    assert "(2018-02-28 to 2021-01-01," in message
    same_connection(http)


def test_depart_is_bounded_to_the_service_window_and_its_margin(http: httpx.Client) -> None:
    # Porto Alegre's feeds run 2019-03-01 to 2019-12-31; 366 days either side are accepted
    params = {"from": DEMO_FROM, "to": DEMO_TO, "modes": "walk"}
    inside = http.get("/api/v1/plan", params={**params, "depart": "2020-12-31T20:59:59-03:00"})
    assert inside.status_code == 200, inside.text
    assert inside.json()["itineraries"]
    after = http.get("/api/v1/plan", params={**params, "depart": "2021-01-01T00:00:01+00:00"})
    refused(after, "out_of_range")
    before = http.get("/api/v1/plan", params={**params, "depart": "2018-02-27T23:59:59+00:00"})
    refused(before, "out_of_range")
    first = http.get("/api/v1/plan", params={**params, "depart": "2018-02-28T00:00:00+00:00"})
    assert first.status_code == 200, first.text
    garbage = http.get("/api/v1/plan", params={**params, "depart": "tomorrow"})
    refused(garbage, "invalid_parameter")
    same_connection(http)


# -- reports -------------------------------------------------------------------------------


def test_deeply_nested_json_in_a_batch_is_a_400(http: httpx.Client) -> None:
    nested = b'{"reports":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    response = http.post(
        "/api/v1/reports/batch",
        content=nested,
        headers={TOKEN_HEADER: new_token(), "Content-Type": "application/json"},
    )
    # the perimeter (api/limits.py) refuses it before any parser recurses
    assert "deep" in refused(response, "too_deep").lower()
    same_connection(http)


@pytest.mark.parametrize(
    ("observed_at", "code"),
    [
        ("0001-01-01T00:00:00+14:00", "report_too_old"),
        ("9999-12-31T23:59:59-12:00", "report_in_future"),
    ],
)
def test_report_times_at_the_ends_of_the_calendar_are_refused(
    http: httpx.Client, observed_at: str, code: str
) -> None:
    body = {"lat": -30.0346, "lon": -51.2177, "kind": "closure", "observed_at": observed_at}
    response = http.post("/api/v1/reports", json=body, headers={TOKEN_HEADER: new_token()})
    refused(response, code, 422)
    same_connection(http)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "1e400"])
def test_non_finite_report_numbers_are_refused(http: httpx.Client, constant: str) -> None:
    document = f'{{"lat": {constant}, "lon": -51.2177, "kind": "closure"}}'
    response = http.post(
        "/api/v1/reports",
        content=document,
        headers={TOKEN_HEADER: new_token(), "Content-Type": "application/json"},
    )
    assert "lat" in refused(response, "invalid_report")
    same_connection(http)


# -- trips ---------------------------------------------------------------------------------


def test_a_car_trip_starts(http: httpx.Client, car_itinerary: Body) -> None:
    """The control: the itinerary the refusals below are made from is itself accepted."""
    response = http.post("/api/v1/trips", json={"itinerary": car_itinerary})
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    gone = http.delete(
        f"/api/v1/trips/{response.json()['trip_id']}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert gone.status_code == 204


def test_drive_edges_beyond_int64_are_refused(http: httpx.Client, car_itinerary: Body) -> None:
    body = copy.deepcopy(car_itinerary)
    leg = next(leg for leg in body["legs"] if leg["drive_edges"])
    leg["drive_edges"] = [1e30]
    response = http.post("/api/v1/trips", json={"itinerary": body})
    assert "drive_edges" in refused(response, "invalid_itinerary")
    leg["drive_edges"] = [2**63 + 5]  # past what JSON clients read exactly
    response = http.post("/api/v1/trips", json={"itinerary": body})
    assert "itinerary.legs" in refused(response, "out_of_range")
    same_connection(http)


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "2030-05-15"])
def test_a_trip_dated_outside_the_service_window_is_refused(
    http: httpx.Client, car_itinerary: Body, day: str
) -> None:
    response = http.post("/api/v1/trips", json={"itinerary": redated(car_itinerary, day)})
    assert "outside the feeds' service window" in refused(response, "out_of_range")
    same_connection(http)


def test_year_one_with_the_largest_offset_is_refused(
    http: httpx.Client, car_itinerary: Body
) -> None:
    text = re.sub(r"-03:00\"", '+14:00"', json.dumps(redated(car_itinerary, "0001-01-01")))
    response = http.post(
        "/api/v1/trips",
        content=f'{{"itinerary": {text}}}',
        headers={"Content-Type": "application/json"},
    )
    refused(response, "out_of_range")
    same_connection(http)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_an_itinerary_are_refused_and_nothing_is_stored(
    server: InThread, http: httpx.Client, car_itinerary: Body, constant: str
) -> None:
    body = copy.deepcopy(car_itinerary)
    body["legs"][0]["distance_m"] = "POISON"
    document = json.dumps({"itinerary": body}).replace('"POISON"', constant)
    before = stored_trips(server)
    response = http.post(
        "/api/v1/trips", content=document, headers={"Content-Type": "application/json"}
    )
    assert "itinerary.legs.0.distance_m" in refused(response, "non_finite_number")
    assert stored_trips(server) == before
    same_connection(http)


def stored_trips(server: InThread) -> set[str]:
    """Trip keys in the server's (in-process) store."""

    async def scan(state: Any) -> set[str]:
        return set(await state.store.scan_keys("trip:*"))

    return asyncio.run(server.call(scan))
