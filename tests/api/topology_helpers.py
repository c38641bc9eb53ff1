"""What the multi-process topology tests share: contributors closing the road ahead of a
live trip, and that trip's socket on *another* API process getting the switch suggestion
(one Redis in ``test_topology.py``, a Redis Cluster in ``test_cluster.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from report_helpers import new_address, new_token, post_report
from trip_helpers import TripSocket, closure_ahead, plan, start_trip, trip_socket, with_mode

from routing.base import CityBase

CONTRIBUTORS = 3
"""Reports it takes to close a road (the fusion's quorum in the test settings)."""


async def close_road_ahead(url: str, report: dict[str, Any]) -> None:
    """Post ``report`` from :data:`CONTRIBUTORS` distinct contributors; each is accepted."""
    for _ in range(CONTRIBUTORS):
        response = await asyncio.to_thread(post_report, url, report, new_token(), new_address())
        assert response.status_code == 202, response.text


@dataclass
class Suggested:
    """A trip started on one API process whose socket, on another, got a switch suggestion."""

    trip_id: str
    token: str
    ws: TripSocket
    suggestion: dict[str, Any]
    waited_s: float  # from the last report's 202 to the suggestion


@asynccontextmanager
async def suggestion_on_other_api(
    first: str, second: str, base: CityBase
) -> AsyncIterator[Suggested]:
    """Start a car-share trip on ``first``, hold its socket on ``second``, close the road
    ahead through ``first``; yields once the suggestion avoiding it has arrived (the socket
    still open)."""
    async with httpx.AsyncClient(timeout=30) as http:
        itinerary = with_mode(await plan(http, first), "carshare")
        trip_id, token = await start_trip(http, first, itinerary)
    report, closed = closure_ahead(base, itinerary)
    async with trip_socket(second, trip_id, token) as ws:
        assert (await ws.recv())["type"] == "hello"
        await close_road_ahead(first, report)
        acked = time.monotonic()
        suggestion = await ws.recv_type("switch_suggestion", timeout=15)
        waited = time.monotonic() - acked
        driven = {e for leg in suggestion["itinerary"]["legs"] for e in leg["drive_edges"]}
        assert not driven & closed
        assert suggestion["plan_broken"] is True
        yield Suggested(trip_id, token, ws, suggestion, waited)
