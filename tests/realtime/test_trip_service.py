"""The trip service (``realtime.trips.service``) without HTTP: operator aggregates and
incident counts (k-thresholded, read from the trip book's keys), and socket close codes.

The HTTP and websocket contract of the same operations is ``tests/api/test_trips.py``.
"""

from __future__ import annotations

import pytest

from correspondance.store import StoreUnavailableError, create_store
from realtime.trips.hub import CLOSE_STORE_UNAVAILABLE, CLOSE_UNSUPPORTED
from realtime.trips.protocol import ProtocolError
from realtime.trips.service import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    REFUSALS,
    BinaryFrameError,
    TripService,
    close_code_of,
)
from realtime.trips.sessions import (
    TripNotFoundError,
    TripTokenError,
    incident_trips_key,
    trip_digest,
)

pytestmark = pytest.mark.anyio

CITY = "porto-alegre"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_operators_see_incident_counts_only_from_k_on() -> None:
    store = create_store(None, prefix="")
    try:
        trips = TripService(store, k=2, demo=False)
        await store.sadd(
            incident_trips_key(CITY, "b-works"), *(trip_digest(f"t{i}") for i in range(3))
        )
        await store.sadd(incident_trips_key(CITY, "a-crash"), trip_digest("t9"))
        await trips.book.count_incidents(CITY, ["b-works"], "suggested")
        await trips.book.count_incidents(CITY, ["b-works", "a-crash"], "accepted")
        await trips.book.count_incidents(CITY, ["b-works"], "accepted")
        await store.sadd(incident_trips_key("elsewhere", "c-other"), trip_digest("t1"))
        await trips.book.count(CITY, "started", 5)
        assert await trips.incident_ids(CITY) == ["a-crash", "b-works"]
        assert await trips.incident_counts(CITY, "b-works") == {
            "trips_touched": 3,
            "suggestions_made": None,  # 1 < k
            "suggestions_accepted": 2,
        }
        out = await trips.aggregates(CITY)
        assert out["incidents"] == [
            {
                "incident_id": "a-crash",
                "trips_touched": None,
                "suggestions_made": 0,
                "suggestions_accepted": None,
            },
            {
                "incident_id": "b-works",
                "trips_touched": 3,
                "suggestions_made": None,
                "suggestions_accepted": 2,
            },
        ]
        assert (out["trips_started"], out["active_trips"], out["k"]) == (5, 0, 2)
    finally:
        await store.aclose()


def test_each_refusal_closes_with_its_documented_code() -> None:
    refused = [
        (TripNotFoundError("gone"), CLOSE_NOT_FOUND),
        (TripTokenError("wrong token"), CLOSE_UNAUTHORIZED),
        (StoreUnavailableError("down"), CLOSE_STORE_UNAVAILABLE),
        (BinaryFrameError("binary"), CLOSE_UNSUPPORTED),
        (ProtocolError("bad message"), CLOSE_BAD_REQUEST),
    ]
    assert [close_code_of(exc) for exc, _ in refused] == [code for _, code in refused]
    assert all(isinstance(exc, REFUSALS) for exc, _ in refused)
    assert (CLOSE_NOT_FOUND, CLOSE_UNAUTHORIZED, CLOSE_BAD_REQUEST) == (4404, 4401, 4400)
