"""An operator's incident counts what it does to live trips (issue 13): the active trips it
touches, the switch suggestions it caused and how many travellers accepted them — counted by
the trip engines on their own trips (a shared set of digests, so any number of engine
processes add up) and by whichever process holds the traveller's socket, never a trip id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from report_helpers import delete_prefix, operator_token
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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(tmp_path: Path, poa_base: CityBase) -> Iterator[InThread]:
    # k = 1: a count of one trip is shown (with k = 2 it would be "fewer than k")
    settings = trip_settings(tmp_path, redis=True, fusion_k=1)
    try:
        with serve_in_thread(settings, poa_base) as running:
            yield running
    finally:
        delete_prefix(settings.redis_prefix)


async def test_an_operators_closure_counts_trips_suggestions_and_acceptances(
    server: InThread, poa_base: CityBase
) -> None:
    operator = await asyncio.to_thread(operator_token, server.settings, server.url)
    auth = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(timeout=30) as http:
        itinerary = with_mode(await plan(http, server.url), "carshare")
        trip_id, token = await start_trip(http, server.url, itinerary)
        _, closed = closure_ahead(poa_base, itinerary)
        async with trip_socket(server.url, trip_id, token) as ws:
            assert (await ws.recv())["type"] == "hello"
            declared = await http.post(
                f"{server.url}/api/v1/operators/incidents",
                json={"edges": sorted(closed), "kind": "closure", "note": "water main"},
                headers=auth,
            )
            assert declared.status_code == 201, declared.text
            incident_id = declared.json()["incident_id"]
            suggestion = await ws.recv_type("switch_suggestion", timeout=15)
            await ws.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
            await ws.recv_type("plan_updated", timeout=10)
        listed = await http.get(f"{server.url}/api/v1/operators/incidents", headers=auth)
    assert listed.status_code == 200, listed.text
    mine = next(i for i in listed.json()["incidents"] if i["incident_id"] == incident_id)
    assert mine["trips_touched"] == 1
    assert mine["suggestions_made"] == 1
    assert mine["suggestions_accepted"] == 1
    # nothing of the trip itself is kept with the incident
    keys = await server.call(lambda state: state.store.scan_keys("tripstats:*"))
    members = await server.call(
        lambda state: state.store.smembers(f"tripstats:porto-alegre:incident:{incident_id}:trips")
    )
    assert trip_id not in "".join(keys) + "".join(members)
