"""The one place where domain errors become HTTP responses.

Every error body is ``{"error": {"code": <stable machine code>, "message": <human>}}``.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.headers import security_headers
from correspondance.errors import CorrespondanceError, InputError, UnknownCityError
from correspondance.store import StoreUnavailableError
from crowdsource.accounts import (
    InvalidCredentialsError,
    InvalidOperatorError,
    NotAuthenticatedError,
    OperatorExistsError,
    TooManyAttemptsError,
)
from crowdsource.errors import RateLimitedError, ReportRejectedError, UnknownReportError
from crowdsource.operators import UnknownEdgeError, UnknownIncidentError
from realtime.trips.demo import DemoDisabledError
from realtime.trips.sessions import TripNotFoundError, TripTokenError
from routing.errors import (
    NoServiceError,
    NoStreetNearbyError,
    OutsideCityError,
    UnknownStopError,
)

log = logging.getLogger("correspondance.api")


class ReportTooLargeError(ReportRejectedError):
    """A request body larger than any report or batch may be (HTTP 413)."""


STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (UnknownCityError, 404),
    (TripNotFoundError, 404),
    (DemoDisabledError, 404),
    (TripTokenError, 401),
    (UnknownStopError, 404),
    (OutsideCityError, 422),
    (NoStreetNearbyError, 422),
    (NoServiceError, 422),
    (InputError, 400),
    (StoreUnavailableError, 503),
    (NotAuthenticatedError, 401),
    (InvalidCredentialsError, 401),
    (OperatorExistsError, 409),
    (InvalidOperatorError, 400),
    (TooManyAttemptsError, 429),
    (UnknownEdgeError, 404),
    (UnknownIncidentError, 404),
    (UnknownReportError, 404),
    (ReportTooLargeError, 413),
    (RateLimitedError, 429),
    (ReportRejectedError, 422),  # invalid_report is 400: see REPORT_STATUS_BY_CODE
)
REPORT_STATUS_BY_CODE = {"invalid_report": 400}
"""A malformed report is the client's syntax error (400); a well-formed one refused for
where, when or how it was sent (outside_city, report_too_old, implausible_sequence, ...) is
422, like the routing errors for places outside the city."""


def status_of(exc: CorrespondanceError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(exc, ReportRejectedError) and not isinstance(exc, ReportTooLargeError):
        return REPORT_STATUS_BY_CODE.get(exc.code, 422)
    return next((s for kind, s in STATUS_BY_ERROR if isinstance(exc, kind)), 400)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


def error_headers(exc: CorrespondanceError, status: int) -> dict[str, str] | None:
    """Headers an error response owes the client: how to authenticate, when to retry."""
    headers = {}
    if status == 401:  # RFC 9110: a 401 names the scheme that would succeed
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return headers or None


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and unexpected failures to JSON responses."""

    @app.exception_handler(CorrespondanceError)
    async def _domain(_: Request, exc: CorrespondanceError) -> JSONResponse:
        status = status_of(exc)
        return JSONResponse(
            error_body(exc.code, exc.message),
            status_code=status,
            headers=error_headers(exc, status),
        )

    @app.exception_handler(StoreUnavailableError)
    async def _store(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        return JSONResponse(
            error_body("store_unavailable", str(exc)), status_code=503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("query", "body", "path"))
            problems.append(f"{where or 'request'}: {err['msg']}")
        return JSONResponse(error_body("invalid_parameter", "; ".join(problems)), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this in ServerErrorMiddleware, outside every user middleware (the
        # security headers' included, whose own exceptions land here too): the headers are
        # added here
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "an unexpected error occurred; it was logged"),
            status_code=500,
            headers=security_headers(request.url.path),
        )
