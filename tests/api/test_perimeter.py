"""The perimeter (issue 11, findings 3, 4 and 8): trusted proxies, request limits, security
headers, ``Allow`` and ``HEAD`` — against real ``correspondance serve`` processes."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from perimeter_helpers import PASSWORD, Served, add_operator, serve
from processes import delete_prefix

CENTRE = (-30.0331315, -51.2172603)  # a one-way drive edge of central Porto Alegre
REPORT_LIMITS = json.dumps({"address_per_minute": 5})
REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perimeter")


@pytest.fixture(scope="module")
def plain(module_tmp: Path) -> Iterator[Served]:
    """A server with the default settings: no trusted proxy."""
    with serve(module_tmp, CORRESPONDANCE_REPORT_LIMITS=REPORT_LIMITS) as served:
        yield served


@pytest.fixture(scope="module")
def proxied(module_tmp: Path) -> Iterator[Served]:
    """A server behind a (pretend) reverse proxy on 127.0.0.1, declared as trusted."""
    with serve(
        module_tmp,
        CORRESPONDANCE_REPORT_LIMITS=REPORT_LIMITS,
        CORRESPONDANCE_TRUSTED_PROXIES="127.0.0.1",
    ) as served:
        yield served


def report(url: str, forwarded_for: str) -> httpx.Response:
    """One congestion report from a fresh contributor, claiming an address."""
    return httpx.post(
        f"{url}/api/v1/reports",
        json={"lat": CENTRE[0], "lon": CENTRE[1], "kind": "congestion", "level": 3},
        headers={
            "X-Contributor-Token": secrets.token_urlsafe(24),
            "X-Forwarded-For": forwarded_for,
        },
        timeout=10,
    )


def login(url: str, username: str, password: str, forwarded_for: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/operators/token",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )


# -- finding 3: clients cannot choose their address --------------------------------------------


def test_rotating_forwarded_for_from_loopback_does_not_dodge_the_address_limit(
    plain: Served,
) -> None:
    # five reports per minute per network: the sixth is refused whatever address it claims
    answers = [report(plain.url, f"203.0.113.{i}").status_code for i in range(1, 7)]
    assert answers == [202] * 5 + [429], answers


def test_rotating_forwarded_for_from_loopback_does_not_dodge_the_login_lockout(
    plain: Served,
) -> None:
    add_operator(plain, "victim")
    answers = [
        login(plain.url, "victim", "wrong password!", f"198.51.100.{i}").status_code
        for i in range(1, 8)
    ]
    assert answers == [401] * 5 + [429] * 2, answers


def test_a_trusted_proxys_forwarded_for_is_believed(proxied: Served) -> None:
    # the same rotation through a declared proxy: distinct clients, each under its limit
    answers = [report(proxied.url, f"203.0.113.{i}").status_code for i in range(1, 7)]
    assert answers == [202] * 6, answers
    # and the client's own address is still limited behind the proxy
    same = [report(proxied.url, "192.0.2.7").status_code for _ in range(6)]
    assert same == [202] * 5 + [429], same


def test_guesses_spread_over_ten_addresses_are_throttled_but_the_operator_gets_in(
    proxied: Served,
) -> None:
    add_operator(proxied, "ana")
    # the operator logged in before, from their usual address
    assert login(proxied.url, "ana", PASSWORD, "192.0.2.50").status_code == 200
    answers = [
        login(proxied.url, "ana", "wrong password!", f"198.51.100.{address}").status_code
        for address in range(1, 11)
        for _ in range(5)
    ]
    # ten free attempts per account from new addresses, then one per backoff period
    # (2 s, 4 s, ...): before the account backoff, all 50 were checked (401)
    assert answers.count(401) <= 12, answers
    assert answers.count(429) >= 38, answers
    assert set(answers) == {401, 429}
    # the operator, from the address they logged in from before, is not locked out
    response = login(proxied.url, "ana", PASSWORD, "192.0.2.50")
    assert response.status_code == 200, response.text
    # a new address has to wait for the backoff, and is told how long
    refused = login(proxied.url, "ana", PASSWORD, "192.0.2.99")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(refused.headers["Retry-After"]) <= 900


# -- finding 4: request limits ------------------------------------------------------------------


def raw_exchange(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, float]:
    """Send a request by hand (the server may close before the body is all sent) and
    return the response's first bytes and the seconds until they arrived."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read what it said
        sock.settimeout(10)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or b"}}" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    return answer, time.perf_counter() - started


HUNDRED_MB = 100 * 1024 * 1024
PIECE = b"[" + b"0," * 32_767 + b"0]"  # 64 KiB of valid JSON-ish bytes


@pytest.mark.parametrize("path", ["/api/v1/trips", "/api/v1/operators/token"])
def test_a_declared_100_mb_body_is_refused_at_once(plain: Served, path: str) -> None:
    before = plain.rss_kib()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {HUNDRED_MB}\r\n\r\n"
    ).encode()
    # nothing of the body is sent: the answer must not wait for it
    answer, took = raw_exchange(plain.port, head, iter(()))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code": "body_too_large"' in answer
    assert took < 2.0
    assert plain.rss_kib() - before < 8 * 1024


@pytest.mark.parametrize("path", ["/api/v1/trips", "/api/v1/operators/token"])
def test_a_streamed_100_mb_body_is_cut_off_at_the_limit(plain: Served, path: str) -> None:
    before = plain.rss_kib()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    framed = f"{len(PIECE):x}\r\n".encode() + PIECE + b"\r\n"
    answer, took = raw_exchange(plain.port, head, iter([framed] * (HUNDRED_MB // len(PIECE))))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"at most 1048576 bytes" in answer
    assert took < 5.0
    # the server read about one megabyte of it, never the hundred
    assert plain.rss_kib() - before < 8 * 1024


def test_deeply_nested_json_is_refused_with_too_deep(plain: Served) -> None:
    deep = "[" * 5000 + "]" * 5000
    for path in ("/api/v1/trips", "/api/v1/reports/batch", "/api/v1/operators/token"):
        response = httpx.post(
            f"{plain.url}{path}",
            content=deep,
            headers={"Content-Type": "application/json", "X-Contributor-Token": "t" * 32},
            timeout=10,
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["code"] == "too_deep"
        assert "5000 levels deep (at most 32)" in response.json()["error"]["message"]
    # brackets inside strings are not nesting
    inside = {"username": "[" * 60, "password": '\\"' + "{" * 1000}
    response = httpx.post(f"{plain.url}/api/v1/operators/token", json=inside, timeout=10)
    assert response.status_code == 401, response.text


def test_oversized_headers_get_431_before_the_app(plain: Served) -> None:
    response = httpx.get(f"{plain.url}/api/v1/cities", headers={"X-Big": "a" * 20_000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    # a header trickled in pieces is cut off too, long before it ends
    head = b"GET /api/v1/cities HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer, _ = raw_exchange(plain.port, head, iter([b"a" * 1024] * 10_000))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    # a normal request still passes
    assert httpx.get(f"{plain.url}/api/v1/cities", headers={"X-Ok": "a" * 8000}).is_success


def test_an_oversized_websocket_message_closes_with_1009(plain: Served) -> None:
    async def send_big() -> int | None:
        url = plain.url.replace("http://", "ws://") + "/ws/v1/operator"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "x" * 100_000}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(send_big()) == 1009


# -- finding 8: headers, Allow, HEAD ------------------------------------------------------------


def test_every_response_carries_the_security_headers(plain: Served) -> None:
    answers = [
        httpx.get(f"{plain.url}/"),
        httpx.get(f"{plain.url}/static/app.js"),
        httpx.get(f"{plain.url}/api/v1/cities"),
        httpx.get(f"{plain.url}/api/v1/nowhere"),
        httpx.delete(f"{plain.url}/api/v1/cities"),
        httpx.post(f"{plain.url}/api/v1/trips", content=b"x" * (2 << 20)),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 404, 405, 413]
    for response in answers:
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp


def assert_secured(headers: httpx.Headers) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_answers_written_before_the_app_and_429_carry_the_security_headers(
    plain: Served,
) -> None:
    # 431 and 400 are written by uvicorn's protocol, before any app code or middleware
    big = httpx.get(f"{plain.url}/api/v1/cities", headers={"X-Big": "a" * 20_000})
    assert big.status_code == 431
    assert_secured(big.headers)
    answer, _ = raw_exchange(
        plain.port, b"GET /api/v1/cities HTTP/1.1\r\nBad header\r\n\r\n", iter([])
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    assert status_line == "HTTP/1.1 400 Bad Request", answer[:300]
    pairs = [line.split(": ", 1) for line in lines]
    assert_secured(httpx.Headers([(name, value) for name, value in pairs]))
    assert json.loads(body)["error"]["code"] == "bad_request"

    # a websocket refused before its handshake (no such route): uvicorn's bare 403 had none
    async def refused() -> websockets.InvalidStatus:
        url = plain.url.replace("http://", "ws://") + "/ws/v1/nowhere"
        with pytest.raises(websockets.InvalidStatus) as raised:
            async with websockets.connect(url):
                pass
        return raised.value

    denied = asyncio.run(refused()).response
    assert denied.status_code == 403
    assert_secured(httpx.Headers(list(denied.headers.raw_items())))
    assert json.loads(denied.body)["error"]["code"] == "forbidden"
    # five reports a minute per network (REPORT_LIMITS): the sixth at the latest is a 429
    limited = [report(plain.url, "203.0.113.9") for _ in range(6)][-1]
    assert limited.status_code == 429
    assert_secured(limited.headers)


def test_405_names_every_allowed_method(plain: Served) -> None:
    response = httpx.put(f"{plain.url}/api/v1/me/reports")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert httpx.delete(f"{plain.url}/api/v1/cities").headers["Allow"] == "GET, HEAD"
    assert httpx.get(f"{plain.url}/api/v1/reports").headers["Allow"] == "POST"


def test_head_works_wherever_get_does(plain: Served) -> None:
    for path in ("/api/v1/cities", "/api/v1/health", "/", "/static/app.js", "/openapi.json"):
        got = httpx.get(f"{plain.url}{path}")
        head = httpx.head(f"{plain.url}{path}")
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        if path != "/api/v1/health":  # its body carries live ages and counters
            assert head.headers.get("content-length") == got.headers.get("content-length"), path
    assert httpx.head(f"{plain.url}/api/v1/reports").status_code == 405


def test_serve_with_workers_applies_the_same_perimeter(tmp_path: Path) -> None:
    prefix = f"perimeter-{uuid.uuid4().hex[:8]}:"
    try:
        with serve(
            tmp_path,
            workers=2,
            REDIS_URL=REDIS_URL,
            CORRESPONDANCE_REDIS_PREFIX=prefix,
            CORRESPONDANCE_CONTRIBUTOR_SECRET="perimeter-tests-secret-0123456789",
            CORRESPONDANCE_REPORT_LIMITS=REPORT_LIMITS,
        ) as served:
            answers = [report(served.url, f"203.0.113.{i}").status_code for i in range(1, 7)]
            assert answers == [202] * 5 + [429], answers
            big = httpx.get(f"{served.url}/api/v1/cities", headers={"X-Big": "a" * 20_000})
            assert big.status_code == 431
            too_large = httpx.post(f"{served.url}/api/v1/trips", content=b"[" * (2 << 20))
            assert too_large.status_code == 413
            assert too_large.headers["X-Frame-Options"] == "DENY"
    finally:
        delete_prefix(prefix, REDIS_URL)
