"""Security headers on every error path (issue 11, "security headers on every response").

The app's own middlewares and handlers, in the order ``create_app`` installs them, on a
small app whose routes and middlewares fail on purpose: an unexpected exception in a route
(500), in a middleware inside the security headers and in one outside them (Starlette's
server-error middleware answers both, outside every user middleware), and each error the
app answers itself (400, 404, 405, 413, 429, 503). The answers uvicorn's protocol writes
before the app (400 malformed request, 431) are checked against a real server in
``tests/api/test_perimeter.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import GZipLargeResponses
from api.errors import install_error_handlers
from api.headers import APP_CSP, DOCS_CSP, SECURITY_HEADERS
from api.limits import install_perimeter
from correspondance.settings import Settings
from correspondance.store import StoreUnavailableError
from crowdsource.errors import RateLimitedError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Exploding:
    """A middleware that raises for one path."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            raise RuntimeError(f"middleware failed on {self.path}")
        await self.app(scope, receive, send)


def build() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    # as create_app: gzip, the perimeter (limits, then the headers outermost), handlers
    app.add_middleware(Exploding, path="/inner-middleware")  # innermost
    app.add_middleware(GZipLargeResponses, minimum_size=2048)
    install_perimeter(app, Settings())
    app.add_middleware(Exploding, path="/outer-middleware")  # outside the headers
    install_error_handlers(app)

    @app.get("/route")
    async def route() -> dict[str, str]:
        raise ZeroDivisionError("a bug")

    @app.get("/docs")
    async def docs() -> dict[str, str]:
        raise KeyError("a bug on a docs page")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/fine")
    async def fine_post() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/limited")
    async def limited() -> dict[str, str]:
        raise RateLimitedError("too many", retry_after_s=7)

    @app.get("/store")
    async def store() -> dict[str, str]:
        raise StoreUnavailableError("Redis is down")

    @app.websocket("/ws-boom")
    async def ws_boom(ws: WebSocket) -> None:
        raise RuntimeError("a bug before the handshake")

    @app.websocket("/ws-refused")
    async def ws_refused(ws: WebSocket) -> None:
        await ws.close(4401)

    @app.websocket("/ws-fine")
    async def ws_fine(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hello")
        await ws.close(1000)

    @app.get("/typed")
    async def typed(n: int) -> dict[str, int]:
        return {"n": n}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def assert_secured(response: httpx.Response, csp: str = APP_CSP, error: bool = True) -> None:
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name.decode()) == value.decode(), (name, response)
    assert response.headers["content-security-policy"] == csp
    assert response.headers["content-type"] == "application/json"
    if error:
        assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize("path", ["/route", "/inner-middleware", "/outer-middleware"])
async def test_a_500_carries_the_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert_secured(response)


async def test_a_500_on_a_docs_page_gets_the_docs_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 500
    assert_secured(response, DOCS_CSP)


async def test_every_error_the_app_answers_carries_them(client: httpx.AsyncClient) -> None:
    nested = json.dumps([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])
    answers = {
        "400": await client.get("/typed", params={"n": "x"}),
        "404": await client.get("/nowhere"),
        "405": await client.delete("/fine"),
        "413": await client.post("/fine", content=b"x" * (Settings().limits.max_body_bytes + 1)),
        "429": await client.get("/limited"),
        "503": await client.get("/store"),
    }
    answers["400 too deep"] = await client.post(
        "/fine", content=nested.encode(), headers={"content-type": "application/json"}
    )
    for status, response in answers.items():
        assert response.status_code == int(status[:3]), (status, response.text)
        assert_secured(response)
    assert answers["405"].headers["allow"] == "GET, HEAD, POST"
    assert answers["429"].headers["retry-after"] == "7"
    assert answers["400 too deep"].json()["error"]["code"] == "too_deep"
    # and a success, for comparison
    assert_secured(await client.get("/fine"), error=False)


async def websocket_answers(app: FastAPI, path: str) -> list[dict[str, Any]]:
    """What the app sends to a websocket client at ``path`` that connects and then waits
    (a server offering the ASGI denial-response extension, as uvicorn does)."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await asyncio.sleep(0.05)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "status"), [("/ws-boom", 500), ("/ws-refused", 403), ("/nowhere", 403)]
)
async def test_a_websocket_refused_before_its_handshake_gets_the_headers(
    path: str, status: int
) -> None:
    sent = await websocket_answers(build(), path)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == status
    headers = [(k.decode(), v.decode()) for k, v in sent[0]["headers"]]
    assert_secured(httpx.Response(status, headers=headers, content=sent[1]["body"]))


async def test_an_accepted_websocket_is_untouched() -> None:
    sent = await websocket_answers(build(), "/ws-fine")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "hello"
