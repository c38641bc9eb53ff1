"""The one place where errors become HTTP responses, with the status the error catalogue
(:mod:`correspondance.error_catalogue`) gives their code.

Every error body is ``{"error": {"code": <stable machine code>, "message": <human>}}``. A
domain error whose code the catalogue does not send over HTTP (uncatalogued, internal,
websocket-only) is a bug or a server-side failure: it is logged with its traceback and
answered ``500 internal_error``, never a guessed 4xx.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.headers import security_headers
from correspondance.error_catalogue import http_status
from correspondance.errors import CorrespondanceError
from correspondance.store import StoreUnavailableError
from crowdsource.errors import ReportRejectedError

log = logging.getLogger("correspondance.api")

STORE_RETRY_AFTER_S = 5
"""``Retry-After`` of a ``503 store_unavailable``."""


class ReportTooLargeError(ReportRejectedError):
    """A request body larger than any report or batch may be (``invalid_report``, HTTP 413)."""

    status = 413


def status_of(exc: CorrespondanceError) -> int | None:
    """The HTTP status of a domain error, from the catalogue; ``None`` if the API must not
    send it (the caller answers ``500 internal_error``)."""
    return http_status(exc.code, exc.status)


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


def error_response(
    code: str,
    message: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response for a catalogued ``code`` (its catalogue status unless ``status``).

    Raises
    ------
    LookupError
        If ``code`` is not one the catalogue sends over HTTP (a bug: answered as a 500).
    """
    status = status if status is not None else http_status(code)
    if status is None:
        raise LookupError(f"error code {code!r} is not in the error catalogue for HTTP")
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def internal_error(request: Request) -> JSONResponse:
    """``500 internal_error``, with the security headers: it may be sent outside every
    user middleware (Starlette's server-error middleware), theirs included."""
    return error_response(
        "internal_error",
        "an unexpected error occurred; it was logged",
        headers=security_headers(request.url.path),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and unexpected failures to JSON responses."""

    @app.exception_handler(CorrespondanceError)
    async def _domain(request: Request, exc: CorrespondanceError) -> JSONResponse:
        status = status_of(exc)
        if status is None:
            log.error(
                "%s with code %r is not an HTTP error of the error catalogue: answered 500",
                type(exc).__name__,
                exc.code,
                exc_info=exc,
            )
            return internal_error(request)
        return JSONResponse(
            error_body(exc.code, exc.message),
            status_code=status,
            headers=error_headers(exc, status),
        )

    @app.exception_handler(StoreUnavailableError)
    async def _store(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        return error_response(
            "store_unavailable", str(exc), headers={"Retry-After": str(STORE_RETRY_AFTER_S)}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("query", "body", "path"))
            problems.append(f"{where or 'request'}: {err['msg']}")
        return error_response("invalid_parameter", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the framework's own refusals (no route, wrong method, an unreadable body)
        detail = str(exc.detail)
        if exc.status_code == 404:
            return error_response("not_found", detail)
        if exc.status_code == 405:
            return error_response("method_not_allowed", detail)
        return error_response("http_error", detail, status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this in ServerErrorMiddleware, outside every user middleware (the
        # security headers' included, whose own exceptions land here too): the headers are
        # added here
        log.exception("unexpected error", exc_info=exc)
        return internal_error(request)
