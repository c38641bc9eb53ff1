"""Request limits at the edge: body size, JSON depth, header size, websocket messages.

Every limit comes from one settings group, :class:`correspondance.settings.Limits`:

* bodies and JSON depth are checked by :class:`RequestLimits`, a pure ASGI middleware, before
  any route runs: a body is counted as it streams (a ``Content-Length`` beyond the limit is
  refused before reading anything; a chunked body is refused as soon as the count passes
  it), so a 100 MB upload costs the server at most the limit in memory;
* the request line and headers are bounded by :class:`BoundedHttpToolsProtocol`, uvicorn's
  httptools protocol counting what it buffers before the headers end (uvicorn's own
  ``h11_max_incomplete_event_size`` only applies to its pure-Python h11 protocol, and
  httptools has no limit at all);
* websocket messages are bounded by uvicorn's ``ws_max_size`` (close code 1009).

:func:`server_options` builds those uvicorn options, with the trusted proxies, for
``correspondance serve``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.headers import security_headers
from correspondance.settings import Limits, Settings

_OPEN_SQUARE, _OPEN_CURLY, _CLOSE_SQUARE, _CLOSE_CURLY = b"[{]}"
_QUOTE, _BACKSLASH = b'"\\'
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_MAX_HEADER_BYTES = Limits().max_header_bytes


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Works on any bytes, valid JSON or not (the route's parser judges validity): brackets
    inside string literals are ignored (a quote counts unless an odd run of backslashes
    precedes it), and the depth is the running count of openers minus closers at its
    highest. Vectorised (numpy), linear, no recursion: a few milliseconds per MiB.

    Parameters
    ----------
    body : bytes
        The text.

    Returns
    -------
    int
        The maximum nesting depth.
    """
    if b"[" not in body and b"{" not in body:
        return 0
    text = np.frombuffer(body, dtype=np.uint8)
    quote = text == _QUOTE
    if b"\\" in body:
        backslash = text == _BACKSLASH
        index = np.arange(text.size, dtype=np.int32)
        # the last non-backslash at or before each position, so that the run of backslashes
        # just before position i is (i - 1) - last_plain[i - 1]
        last_plain = np.maximum.accumulate(np.where(backslash, np.int32(-1), index))
        run_before = np.zeros(text.size, dtype=np.int32)
        run_before[1:] = index[:-1] - last_plain[:-1]
        quote &= (run_before & 1) == 0
    outside = (np.cumsum(quote, dtype=np.int32) & 1) == 0
    opens = ((text == _OPEN_SQUARE) | (text == _OPEN_CURLY)) & outside
    closes = ((text == _CLOSE_SQUARE) | (text == _CLOSE_CURLY)) & outside
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _error(status: int, code: str, message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body


async def send_error(
    send: Send, status: int, code: str, message: str, *, close: bool = False
) -> None:
    """Answer with the API's error body ``{"error": {"code", "message"}}``.

    ``close`` adds ``Connection: close``: the client may still be sending a body the server
    will not read, so the connection is not reused.
    """
    headers, body = _error(status, code, message)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Refuse request bodies over ``limits.max_body_bytes`` (413 ``body_too_large``) and
    JSON nested deeper than ``limits.max_json_depth`` (400 ``too_deep``).

    The body is read here, counted as it arrives, then handed to the app in one piece, so a
    route never sees more than the limit. Requests without a body pass untouched.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        too_large = f"request body: too large (at most {limit} bytes)"
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await send_error(send, 413, "body_too_large", too_large, close=True)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_error(send, 413, "body_too_large", too_large, close=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # fewer openers than the limit cannot nest deeper than it (every report): no scan
        openers = body.count(b"[") + body.count(b"{")
        depth = json_depth(body) if openers > self.limits.max_json_depth else 0
        if depth > self.limits.max_json_depth:
            await send_error(
                send,
                400,
                "too_deep",
                f"request body: JSON nested {depth} levels deep "
                f"(at most {self.limits.max_json_depth})",
            )
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body read already, then waits on the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class HeadersTooLargeError(Exception):
    """Raised inside a parser callback: httptools then stops parsing the message."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line plus headers larger than
    uvicorn's ``h11_max_incomplete_event_size`` option with 431 ``headers_too_large`` and
    closing the connection, before any app code runs.

    The URL and each header are counted as the parser delivers them; and since httptools
    buffers a header value until it ends, without limit, the bytes received while a
    message's headers are still incomplete are counted too, which bounds that buffer (to the
    limit plus one read). The limit is the option h11 uses, so one setting drives both.
    """

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._in_headers = False
        self._header_bytes = 0
        self._received_in_headers = 0
        self._too_large = False

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise HeadersTooLargeError

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._received_in_headers = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        # only whole reads that began and ended inside one message's headers are counted
        # here (never a previous message's body), so this never refuses a valid request
        was_in_headers = self._in_headers
        super().data_received(data)
        if self.transport.is_closing() or not (was_in_headers and self._in_headers):
            return
        self._received_in_headers += len(data)
        if self._received_in_headers > self.max_header_bytes:
            self._too_large = True
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser refused, in the API's error format, with the
        security headers (no app code, and so no middleware, runs for it), and close."""
        if self._too_large:
            self._in_headers = False
            status, reason = 431, b"Request Header Fields Too Large"
            headers, body = _error(
                431,
                "headers_too_large",
                f"request line and headers: too large (at most {self.max_header_bytes} bytes)",
            )
        else:  # uvicorn's own answer is text/plain "Invalid HTTP request received."
            status, reason = 400, b"Bad Request"
            headers, body = _error(400, "bad_request", f"malformed HTTP request: {msg}")
        headers += [(k.encode(), v.encode()) for k, v in security_headers("").items()]
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(
            name + b": " + value + b"\r\n" for name, value in headers
        )
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for the perimeter: which proxies' forwarding headers to believe,
    and the header and websocket message limits.

    With no trusted proxy (the default) uvicorn's proxy-headers middleware is off, so
    ``X-Forwarded-For`` from anyone, loopback included, is ignored: uvicorn would otherwise
    believe it from 127.0.0.1, letting any client behind a local proxy pick its address.
    """
    limits = settings.limits
    proxies = settings.trusted_proxy_list
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": ",".join(proxies) if proxies else "",
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "ws_max_size": limits.max_ws_message_bytes,
    }


def install_perimeter(app: FastAPI, settings: Settings) -> None:
    """Register the perimeter middlewares: request limits, then (outermost) the security
    headers, so that a 413 carries them too."""
    from api.headers import SecurityHeaders

    app.add_middleware(RequestLimits, limits=settings.limits)
    app.add_middleware(SecurityHeaders, routes=app.router.routes)
