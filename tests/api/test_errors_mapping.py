"""Errors become responses through the catalogue: the statuses the API sent before it stay,
and an error the catalogue does not send over HTTP is a logged 500, never a guessed 400.

``EXPECTED`` is the mapping ``api/errors.py`` wrote out by hand before the catalogue
(``STATUS_BY_ERROR``, ``REPORT_STATUS_BY_CODE``): one error of every kind a route raises.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from api.cursor import InvalidCursorError
from api.errors import ReportTooLargeError, install_error_handlers, status_of
from api.headers import APP_CSP, SECURITY_HEADERS
from api.limits import install_perimeter
from api.query import UnknownParameterError
from correspondance.bounds import JsonTooDeepError, NonFiniteNumberError, OutOfRangeError
from correspondance.errors import (
    ConfigError,
    CorrespondanceError,
    InputError,
    TripNotFoundError,
    UnknownCityError,
)
from correspondance.settings import Settings
from correspondance.store import StoreUnavailableError
from correspondance.store.errors import FencedOutError, StoreError, StoreTypeError
from crowdsource.accounts import (
    InvalidCredentialsError,
    InvalidOperatorError,
    NotAuthenticatedError,
    OperatorExistsError,
    TooManyAttemptsError,
)
from crowdsource.errors import RateLimitedError, ReportRejectedError, UnknownReportError
from crowdsource.operators import UnknownEdgeError, UnknownIncidentError
from feeds.errors import FeedError
from realtime.trips.commands import CommandRefusedError
from realtime.trips.demo import DemoDisabledError
from realtime.trips.plan_view import ItineraryError
from realtime.trips.protocol import ProtocolError
from realtime.trips.sessions import CorruptTripError, TripTokenError
from routing.errors import (
    BuildError,
    NoServiceError,
    NoStreetNearbyError,
    OutsideCityError,
    UnknownStopError,
)

pytestmark = pytest.mark.anyio

EXPECTED: list[tuple[CorrespondanceError, int]] = [
    (UnknownCityError("x"), 404),
    (TripNotFoundError("x"), 404),
    (CorruptTripError("x"), 404),
    (DemoDisabledError("x"), 404),
    (TripTokenError("x"), 401),
    (UnknownStopError("x"), 404),
    (OutsideCityError("x"), 422),
    (NoStreetNearbyError("x"), 422),
    (NoServiceError("x"), 422),
    (InputError("x"), 400),
    (InputError("x", code="conflicting_parameters"), 400),
    (InputError("x", code="query_too_long"), 400),
    (InputError("x", code="empty_query"), 400),
    (InputError("x", code="no_road_ahead"), 400),
    (OutOfRangeError("x"), 400),
    (NonFiniteNumberError("x"), 400),
    (JsonTooDeepError("x"), 400),
    (UnknownParameterError("x"), 400),
    (InvalidCursorError("x"), 400),
    (ItineraryError("x"), 400),
    (StoreUnavailableError("x"), 503),
    (NotAuthenticatedError("x"), 401),
    (InvalidCredentialsError("x"), 401),
    (OperatorExistsError("x"), 409),
    (InvalidOperatorError("x", field="username"), 400),
    (TooManyAttemptsError("x", retry_after_s=3), 429),
    (UnknownEdgeError("x"), 404),
    (UnknownIncidentError("x"), 404),
    (UnknownReportError("x"), 404),
    (ReportTooLargeError("x", fields=("body",)), 413),
    (RateLimitedError("x", retry_after_s=3), 429),
    (ReportRejectedError("x"), 400),
    (ReportRejectedError("x", code="outside_city"), 422),
    (ReportRejectedError("x", code="no_street_nearby"), 422),
    (ReportRejectedError("x", code="report_in_future"), 422),
    (ReportRejectedError("x", code="report_too_old"), 422),
    (ReportRejectedError("x", code="implausible_sequence"), 422),
    (ReportRejectedError("x", code="duplicate_report"), 422),
]


@pytest.mark.parametrize(
    ("error", "status"), EXPECTED, ids=[f"{type(e).__name__}-{e.code}" for e, _ in EXPECTED]
)
def test_every_status_sent_before_the_catalogue_stays(
    error: CorrespondanceError, status: int
) -> None:
    assert status_of(error) == status


# errors that used to fall through to 400 although the client did nothing wrong (or that no
# HTTP route raises): now a logged 500 internal_error
NOT_HTTP: list[CorrespondanceError] = [
    StoreError("x"),
    FencedOutError("x"),
    StoreTypeError("x"),
    ConfigError("x"),
    FeedError("x"),
    FeedError("x", code="invalid_gtfsrt"),
    BuildError("x"),
    CorrespondanceError("x"),
    CommandRefusedError("x"),  # websocket only
    ProtocolError("x"),  # websocket only
]


@pytest.mark.parametrize("error", NOT_HTTP, ids=[f"{type(e).__name__}" for e in NOT_HTTP])
def test_an_internal_or_websocket_only_error_has_no_http_status(
    error: CorrespondanceError,
) -> None:
    assert status_of(error) is None


# -- through an app ----------------------------------------------------------------------------


class MadeUpError(CorrespondanceError):
    """A domain error someone forgot to catalogue."""

    code = "made_up_code"


class TeapotError(InputError):
    """A catalogued code with a status its entry does not list."""

    status = 418


def build() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_perimeter(app, Settings())
    install_error_handlers(app)
    raising: dict[str, Exception] = {
        "/uncatalogued": MadeUpError("a bug: this code is in no catalogue"),
        "/internal": FencedOutError("lock lost: writer 7 at 12:00"),
        "/websocket-only": CommandRefusedError("the trip has ended", code="trip_ended"),
        "/odd-status": TeapotError("x"),
        "/too-large": ReportTooLargeError("invalid report: body: too large", fields=("body",)),
        "/unauthorized": NotAuthenticatedError("operators only"),
        "/store": StoreUnavailableError("Redis is down"),
        "/framework": HTTPException(409, "a framework refusal"),
    }

    for path, exc in raising.items():
        app.add_api_route(path, raises(exc), methods=["GET"])
    return app


def raises(exc: Exception) -> Callable[[], Awaitable[None]]:
    """A route that raises ``exc``."""

    async def route() -> None:
        raise exc

    return route


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name.decode()) == value.decode(), name
    assert response.headers["content-security-policy"] == APP_CSP


@pytest.mark.parametrize(
    ("path", "exc_name"),
    [
        ("/uncatalogued", "MadeUpError"),
        ("/internal", "FencedOutError"),
        ("/websocket-only", "CommandRefusedError"),
        ("/odd-status", "TeapotError"),
    ],
)
async def test_an_error_the_catalogue_does_not_send_is_a_logged_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, exc_name: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="correspondance.api"):
        response = await client.get(path)
    assert_error(response, 500, "internal_error")
    assert response.json()["error"]["message"] == "an unexpected error occurred; it was logged"
    logged = [r for r in caplog.records if r.name == "correspondance.api"]
    assert len(logged) == 1
    assert exc_name in logged[0].getMessage()
    assert logged[0].exc_info is not None  # with its traceback
    assert type(logged[0].exc_info[1]).__name__ == exc_name


async def test_catalogued_errors_keep_their_status_code_and_headers(
    client: httpx.AsyncClient,
) -> None:
    too_large = await client.get("/too-large")
    assert_error(too_large, 413, "invalid_report")
    unauthorized = await client.get("/unauthorized")
    assert_error(unauthorized, 401, "unauthorized")
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    store = await client.get("/store")
    assert_error(store, 503, "store_unavailable")
    assert store.headers["retry-after"] == "5"
    assert store.json()["error"]["message"] == "Redis is down"
    framework = await client.get("/framework")
    assert_error(framework, 409, "http_error")
    assert framework.json()["error"]["message"] == "a framework refusal"
    assert_error(await client.get("/nowhere"), 404, "not_found")
    assert_error(await client.post("/store"), 405, "method_not_allowed")
