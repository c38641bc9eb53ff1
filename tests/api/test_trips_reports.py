"""End to end: contributors' reports over HTTP → fusion → the trip engine → a suggestion.

A car-share trip in Porto Alegre is followed over a real websocket. Three contributors,
each with their own token on their own network (loopback addresses bound per client, so
the server sees three real client addresses), report the street ahead of the car closed.
No test-only path: the reports go through intake, abuse rules and fusion; fusion closes
the edges; the engine finds the trip through its edge index and replans it. The suggestion
must arrive within 2 s of the k-th acknowledgement, and accepting it must make a plan that
no longer drives the closed street.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from report_helpers import new_address, new_token, post_report
from trip_helpers import (
    InThread,
    closure_ahead,
    plan,
    serve_in_thread,
    start_trip,
    trip_settings,
    trip_socket,
    with_mode,
)

from routing.base import CityBase

pytestmark = pytest.mark.anyio
CONTRIBUTORS = 3  # k = 2 by default: one more than needed


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[InThread]:
    folder: Path = tmp_path_factory.mktemp("trip-reports")
    with serve_in_thread(trip_settings(folder), poa_base) as running:
        yield running


async def test_contributors_close_the_road_ahead_and_a_switch_arrives_within_2_s(
    server: InThread, poa_base: CityBase
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        itinerary = with_mode(await plan(http, server.url), "carshare")
        trip_id, token = await start_trip(http, server.url, itinerary)
    report, closed = closure_ahead(poa_base, itinerary)
    async with trip_socket(server.url, trip_id, token) as ws:
        hello = await ws.recv()
        assert hello["type"] == "hello"
        assert hello["last_seq"] == 0
        acked_at = 0.0
        for _ in range(CONTRIBUTORS):
            response = await asyncio.to_thread(
                post_report, server.url, report, new_token(), new_address()
            )
            assert response.status_code == 202, response.text
            assert closed & set(response.json()["edge_ids"]), response.json()
            acked_at = time.monotonic()
        suggestion = await ws.recv_type("switch_suggestion", timeout=10)
        waited = time.monotonic() - acked_at
        assert waited <= 2.0, f"suggestion {waited:.2f} s after the last report"
        assert suggestion["seq"] == 1
        assert suggestion["reason"]["code"] == "congestion"
        assert suggestion["plan_broken"] is True  # the planned street is closed
        new_plan = suggestion["itinerary"]
        driven = {e for leg in new_plan["legs"] for e in leg["drive_edges"]}
        assert not driven & closed
        await ws.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
        updated = await ws.recv_type("plan_updated", timeout=10)
        assert updated["seq"] == 2
        assert updated["itinerary"] == new_plan
    async with httpx.AsyncClient(timeout=30) as http:
        export = await http.get(
            f"{server.url}/api/v1/trips/{trip_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert export.status_code == 200
    assert export.json()["trip"]["plan"] == new_plan
