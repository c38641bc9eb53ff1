"""Security headers on every response, ``Allow`` on every 405, and ``HEAD`` wherever ``GET``
works: a pure ASGI middleware, outermost but for the server-error handler.

Three kinds of answers never pass through the middleware, and add :func:`security_headers`
themselves: the 500 of an unexpected exception (Starlette's ``ServerErrorMiddleware`` wraps
every user middleware, so it also answers for an exception raised in one; see
``api/errors.py``), and the 400 and 431 that uvicorn's protocol writes before any app code
runs (``api/limits.py``).

The Content-Security-Policy allows only the app's own origin: the web app is plain ES
modules and Leaflet served from ``/static``, with its own GeoJSON base map (no tile server,
no inline script). The interactive API docs (``/docs``, ``/redoc``) load the pinned Swagger
UI / ReDoc bundles from this server too (no CDN, no inline script); they style themselves
with inline styles and ReDoc runs a worker from a blob, so those pages get a policy that
allows exactly that, and nothing from elsewhere.
"""

from __future__ import annotations

import json
import logging

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self' ws: wss:; worker-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
log = logging.getLogger("correspondance.api")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), payment=(), usb=()"),
)


def security_headers(path: str) -> dict[str, str]:
    """The security headers (with the CSP for ``path``) as a mapping, for responses that
    do not pass through :class:`SecurityHeaders`: the 500 that Starlette's outermost
    server-error middleware sends, and the answers uvicorn's protocol writes itself (400
    for a malformed request, 431)."""
    csp = DOCS_CSP if path in DOCS_PATHS else APP_CSP
    out = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
    out["content-security-policy"] = csp
    return out


def plain_routes(routes: list[BaseRoute]) -> list[Route]:
    """Every :class:`Route` of an app, with those of included routers (FastAPI keeps an
    included router as one lazy entry pointing at the router it includes)."""
    out: list[Route] = []
    for route in routes:
        if isinstance(route, Route):
            out.append(route)
        included = getattr(route, "original_router", None)
        if included is not None:
            out += plain_routes(included.routes)
    return out


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route accepts at the request's path (with ``HEAD`` wherever
    ``GET`` is), sorted; empty if no route has that path.

    Starlette's own 405 names only the first matching route's methods, although a path may
    be served by several routes (``GET`` and ``DELETE /api/v1/me/reports``).
    """
    methods: set[str] = set()
    probe = {**scope, "type": "http"}
    for route in plain_routes(routes):
        if route.methods:
            match, _ = route.matches(probe)
            if match != Match.NONE:
                methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` and a CSP to every HTTP response, ``Allow`` to 405s,
    and answer ``HEAD`` as ``GET`` without the body (FastAPI routes accept only the
    methods they declare)."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else APP_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"allow"]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp.encode()))
                if message["status"] == 405:
                    allow = allowed_methods(self.routes, scope)
                    headers.append((b"allow", ", ".join(allow).encode()))
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket refused before its handshake gets an HTTP answer too: uvicorn's is a
        bare 403 (the app closed it) or 500 (the app raised), with no security headers.
        Where the server offers the ASGI denial-response extension (uvicorn does), this
        sends the API's JSON error with the headers instead."""
        if "websocket.http.response" not in scope.get("extensions", {}):
            await self.app(scope, receive, send)
            return
        state = {"answered": False}  # accepted, or an HTTP answer started

        async def deny(status: int, code: str, message: str) -> None:
            body = json.dumps({"error": {"code": code, "message": message}}).encode()
            headers = [(k.encode(), v.encode()) for k, v in security_headers(scope["path"]).items()]
            headers += [(b"content-type", b"application/json")]
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})

        async def send_with_headers(message: Message) -> None:
            kind = message["type"]
            if not state["answered"]:
                if kind == "websocket.close":
                    state["answered"] = True
                    await deny(403, "forbidden", "websocket refused before its handshake")
                    return
                state["answered"] = kind in ("websocket.accept", "websocket.http.response.start")
                if kind == "websocket.http.response.start":
                    present = {k.lower() for k, _ in message.get("headers", [])}
                    extra = [
                        (k.encode(), v.encode())
                        for k, v in security_headers(scope["path"]).items()
                        if k.encode() not in present
                    ]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if state["answered"]:
                raise
            log.exception("unexpected error before a websocket handshake")
            state["answered"] = True
            await deny(500, "internal_error", "an unexpected error occurred; it was logged")
