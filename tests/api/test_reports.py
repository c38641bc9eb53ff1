"""Anonymous congestion reports over real HTTP: intake, validation, abuse, fusion, self data.

Servers are real uvicorn processes' worth of app (threads here) on loopback; Redis-backed
ones use the real server under a random prefix. Client addresses are real source addresses
(see ``report_helpers``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from report_helpers import (
    EDGES,
    LAKE,
    LISBON,
    SECRET,
    TOKEN_HEADER,
    car_seconds,
    client,
    delete_prefix,
    fused,
    new_address,
    new_token,
    operator_token,
    post_report,
    report_at,
    report_settings,
    serve,
    wait_for,
)

from correspondance.settings import Settings
from crowdsource.tokens import contributor_key
from routing.base import CityBase


class Running:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[Running]:
    """One Redis-backed server with live fusion, shared by the tests of this module."""
    settings = report_settings("redis", tmp_path_factory.mktemp("reports"))
    try:
        with serve(settings, poa_base) as url:
            yield Running(url, settings)
    finally:
        delete_prefix(settings.redis_prefix)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def iso(seconds_from_now: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    return moment.isoformat()


# -- intake --------------------------------------------------------------------------------


def test_a_good_report_is_accepted_and_matched_to_its_edge(api: Running) -> None:
    response = post_report(api.url, report_at("lonely", level=1), new_token(), new_address())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["edge_ids"] == [EDGES["lonely"]["edge"]]
    assert len(body["report_id"]) == 32


def test_an_exact_duplicate_is_ignored(api: Running) -> None:
    token, address = new_token(), new_address()
    first = post_report(api.url, report_at("lonely", level=2), token, address)
    again = post_report(api.url, report_at("lonely", level=2), token, address)
    assert first.status_code == again.status_code == 202
    assert first.json()["status"] == "accepted"
    assert again.json() == {
        "report_id": None,
        "edge_ids": first.json()["edge_ids"],
        "status": "duplicate",
    }
    with client() as http:
        export = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: token})
    assert [r["report_id"] for r in export.json()["reports"]] == [first.json()["report_id"]]


BAD_REPORTS: list[tuple[str, Any, int, str, str]] = [
    (
        "outside-city",
        {"lat": LISBON[0], "lon": LISBON[1], "kind": "clear"},
        422,
        "outside_city",
        "outside",
    ),
    (
        "far-from-street",
        {"lat": LAKE[0], "lon": LAKE[1], "kind": "clear"},
        422,
        "no_street_nearby",
        "60 m",
    ),
    ("future", report_at("lonely", observed_at="FUTURE"), 422, "report_in_future", "future"),
    ("too-old", report_at("lonely", observed_at="OLD"), 422, "report_too_old", "old"),
    ("unknown-kind", report_at("lonely", kind="flood", level=None), 400, "invalid_report", "kind"),
    ("level-missing", report_at("lonely", level=None), 400, "invalid_report", "level"),
    ("level-too-high", report_at("lonely", level=5), 400, "invalid_report", "level"),
    ("level-zero", report_at("lonely", level=0), 400, "invalid_report", "level"),
    (
        "level-on-closure",
        report_at("lonely", kind="closure", level=2),
        400,
        "invalid_report",
        "level",
    ),
    ("lat-as-text", report_at("lonely", lat="-30.03"), 400, "invalid_report", "lat"),
    ("heading-range", report_at("lonely", heading=400.0), 400, "invalid_report", "heading"),
    ("unknown-mode", report_at("lonely", mode="plane"), 400, "invalid_report", "mode"),
    ("extra-field", report_at("lonely", user="me"), 400, "invalid_report", "user"),
    (
        "naive-time",
        report_at("lonely", observed_at="2024-01-01T10:00:00"),
        400,
        "invalid_report",
        "observed_at",
    ),
    ("not-an-object", [1, 2], 400, "invalid_report", "invalid report"),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [case[1:] for case in BAD_REPORTS],
    ids=[case[0] for case in BAD_REPORTS],
)
def test_bad_reports_are_refused_naming_the_problem(
    api: Running, body: dict[str, Any], status: int, code: str, named: str
) -> None:
    when = body.get("observed_at") if isinstance(body, dict) else None
    if when == "FUTURE":
        body = body | {"observed_at": iso(3600)}
    elif when == "OLD":
        body = body | {"observed_at": iso(-2 * 3600)}
    token = new_token()
    response = post_report(api.url, body, token, new_address())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert named in error["message"]
    with client() as http:
        export = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: token})
    assert export.json()["reports"] == []


def test_a_body_that_is_not_json_is_refused(api: Running) -> None:
    with client(new_address()) as http:
        response = http.post(
            f"{api.url}/api/v1/reports", content=b"{lat: 1", headers={TOKEN_HEADER: new_token()}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_report"


def test_an_oversized_body_is_refused_before_it_is_read(api: Running) -> None:
    body = report_at("lonely") | {"padding": "x" * 100_000}
    response = post_report(api.url, body, new_token(), new_address())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "invalid_report"
    assert "too large" in response.json()["error"]["message"]
    # a streamed body without Content-Length is cut off too
    with client(new_address()) as http:
        chunks = (b"x" * 16_384 for _ in range(8))
        streamed = http.post(
            f"{api.url}/api/v1/reports", content=chunks, headers={TOKEN_HEADER: new_token()}
        )
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    "token",
    [None, "", "short", "x" * 129, "has spaces in it!!", "ünïcödé-token-1234567"],
    ids=["missing", "empty", "short", "long", "spaces", "non-ascii"],
)
def test_a_missing_or_bad_token_is_refused_naming_the_header(
    api: Running, token: str | None
) -> None:
    headers: dict[bytes, bytes] = {}
    if token is not None:
        headers[TOKEN_HEADER.encode()] = token.encode("utf-8")
    with client(new_address()) as http:
        for method, path, body in [
            ("POST", "/api/v1/reports", report_at("lonely")),
            ("POST", "/api/v1/reports/batch", {"reports": [report_at("lonely")]}),
            ("GET", "/api/v1/me/reports", None),
            ("DELETE", "/api/v1/me/reports", None),
        ]:
            response = http.request(method, f"{api.url}{path}", json=body, headers=headers)
            assert response.status_code == 400, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_report"
            assert TOKEN_HEADER in error["message"]
            if token:
                assert token not in response.text


def test_an_unknown_city_is_404(api: Running) -> None:
    with client(new_address()) as http:
        response = http.post(
            f"{api.url}/api/v1/reports",
            params={"city": "atlantis"},
            json=report_at("lonely"),
            headers={TOKEN_HEADER: new_token()},
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_city"


def test_a_too_long_city_is_400_and_documented(api: Running) -> None:
    with client(new_address()) as http:
        response = http.post(
            f"{api.url}/api/v1/reports",
            params={"city": "x" * 65},
            json=report_at("lonely"),
            headers={TOKEN_HEADER: new_token(), "Accept-Encoding": "gzip"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "invalid_parameter",
            "message": "city: String should have at most 64 characters",
        }
        spec = http.get(f"{api.url}/openapi.json").json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/reports"]["post"]["parameters"]}
    assert set(parameters) == {"city", "X-Contributor-Token"}
    assert parameters["city"]["schema"]["anyOf"][0]["maxLength"] == 64
    assert parameters["X-Contributor-Token"]["in"] == "header"


# -- batches -------------------------------------------------------------------------------


def test_a_batch_answers_per_report(api: Running) -> None:
    token = new_token()
    reports = [
        report_at("lonely", level=1),
        report_at("lonely", level=9),
        {"lat": LISBON[0], "lon": LISBON[1], "kind": "clear"},
        report_at("lonely", level=1),  # exact duplicate of the first
        report_at("lonely", kind="clear", level=None, observed_at=iso(-60)),
    ]
    with client(new_address()) as http:
        response = http.post(
            f"{api.url}/api/v1/reports/batch",
            json={"reports": reports},
            headers={TOKEN_HEADER: token},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 2)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "accepted",
    ]
    assert results[1]["error"]["code"] == "invalid_report"
    assert "level" in results[1]["error"]["message"]
    assert results[2]["error"]["code"] == "outside_city"
    assert results[0]["edge_ids"] == [EDGES["lonely"]["edge"]]
    with client() as http:
        export = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: token}).json()
    assert {r["report_id"] for r in export["reports"]} == {
        results[0]["report_id"],
        results[4]["report_id"],
    }


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"reports": []}, "reports"),
        ({"reports": [report_at("lonely")] * 101}, "reports"),
        ({"items": [report_at("lonely")]}, "items"),
        ([report_at("lonely")], "invalid report"),
    ],
    ids=["empty", "over-100", "wrong-key", "bare-list"],
)
def test_a_malformed_batch_is_refused_whole(api: Running, body: Any, named: str) -> None:
    with client(new_address()) as http:
        response = http.post(
            f"{api.url}/api/v1/reports/batch", json=body, headers={TOKEN_HEADER: new_token()}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_report"
    assert named in response.json()["error"]["message"]


# -- fusion: what routing sees -------------------------------------------------------------


def test_two_contributors_from_two_networks_slow_the_car_route(
    api: Running, poa_base: CityBase
) -> None:
    edge = EDGES["fusion"]["edge"]
    free = car_seconds(api.url, poa_base, "fusion")
    first = post_report(api.url, report_at("fusion"), new_token(), new_address())
    assert first.status_code == 202
    time.sleep(1.5)  # a fusion has run: one voice moves nothing
    assert edge not in fused(api.settings)
    assert car_seconds(api.url, poa_base, "fusion") == free
    second = post_report(api.url, report_at("fusion"), new_token(), new_address())
    assert second.status_code == 202
    acknowledged = time.monotonic()
    wait_for(lambda: car_seconds(api.url, poa_base, "fusion") > free, timeout_s=2.5)
    assert time.monotonic() - acknowledged <= 2.5
    assert fused(api.settings)[edge] > 1.0


def test_thirty_fresh_tokens_from_one_address_are_throttled_and_move_nothing(
    api: Running, poa_base: CityBase
) -> None:
    edge = EDGES["attack"]["edge"]
    free = car_seconds(api.url, poa_base, "attack")
    attacker = new_address()
    statuses: list[int] = []
    retry_after: list[int] = []
    with client(attacker) as http:
        for _ in range(30):
            token = new_token()
            for level in (2, 3, 4):
                response = http.post(
                    f"{api.url}/api/v1/reports",
                    json=report_at("attack", level=level),
                    headers={TOKEN_HEADER: token},
                )
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.json()["error"]["code"] == "rate_limited"
                    retry_after.append(int(response.headers["Retry-After"]))
    assert set(statuses) == {202, 429}
    assert statuses.count(202) == 60  # the per-network limit: 60 a minute, all tokens together
    assert statuses.count(429) == 30
    assert all(1 <= s <= 60 for s in retry_after)
    time.sleep(2.5)  # two fusions at least
    assert edge not in fused(api.settings)
    assert car_seconds(api.url, poa_base, "attack") == free


def test_a_flood_from_one_token_is_throttled_across_addresses(api: Running) -> None:
    token = new_token()
    statuses = []
    for i in range(14):
        body = report_at("lonely", level=1 + i % 4, observed_at=iso(-i))
        statuses.append(post_report(api.url, body, token, new_address()).status_code)
    # 12 a minute per token (6 per area first: this token stays in one cell)
    assert statuses.count(429) >= 2
    assert statuses[0] == 202


def test_an_implausible_jump_is_refused(api: Running) -> None:
    token = new_token()
    first = post_report(api.url, report_at("lonely"), token, new_address())
    assert first.status_code == 202
    far = report_at("single", kind="clear", level=None)  # ~2.5 km away a moment later
    response = post_report(api.url, far, token, new_address())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "implausible_sequence"


# -- self data -----------------------------------------------------------------------------


def test_export_then_delete_and_the_multiplier_returns_to_one(
    api: Running, poa_base: CityBase
) -> None:
    edge = EDGES["delete"]["edge"]
    free = car_seconds(api.url, poa_base, "delete")
    mine, theirs = new_token(), new_token()
    ids = []
    for level in (3, 4):
        response = post_report(api.url, report_at("delete", level=level), mine, new_address())
        assert response.status_code == 202
        ids.append(response.json()["report_id"])
    assert post_report(api.url, report_at("delete"), theirs, new_address()).status_code == 202
    wait_for(lambda: edge in fused(api.settings), timeout_s=3)
    assert car_seconds(api.url, poa_base, "delete") > free

    with client() as http:
        export = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: mine})
        assert export.status_code == 200
        body = export.json()
        assert [r["report_id"] for r in body["reports"]] == ids
        assert all(r["edge_ids"] == [edge] for r in body["reports"])
        assert "contributor" not in body["reports"][0]
        assert mine not in export.text
        assert 0.1 <= body["weight"] <= 1.0

        deleted = http.delete(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: mine})
        assert deleted.status_code == 200
        assert deleted.json() == {"deleted": 2}
        again = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: mine}).json()
        assert again == {"reports": [], "weight": None}
        # the other contributor's data is untouched
        other = http.get(f"{api.url}/api/v1/me/reports", headers={TOKEN_HEADER: theirs}).json()
        assert len(other["reports"]) == 1
    wait_for(lambda: edge not in fused(api.settings), timeout_s=2.5)
    assert car_seconds(api.url, poa_base, "delete") == free


# -- the operators' aggregate view ---------------------------------------------------------


def test_operators_see_only_edges_k_contributors_stand_behind(api: Running) -> None:
    url = api.url
    anonymous = httpx.get(f"{url}/api/v1/operators/congestion", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    token = operator_token(api.settings, url)
    tokens = [new_token() for _ in range(3)]
    ids = []
    for contributor in tokens[:2]:  # "view": two contributors, two networks
        ids.append(post_report(url, report_at("view"), contributor, new_address()).json())
    ids.append(post_report(url, report_at("confirm"), tokens[2], new_address()).json())
    ids.append(post_report(url, report_at("single"), new_token(), new_address()).json())
    confirmed = httpx.post(
        f"{url}/api/v1/operators/edges/{EDGES['confirm']['edge']}/confirm",
        json={"level": 3},
        headers=bearer(token),
        timeout=10,
    )
    assert confirmed.status_code == 200
    wanted = {EDGES["view"]["edge"], EDGES["confirm"]["edge"]}

    def view() -> dict[str, Any]:
        response = httpx.get(
            f"{url}/api/v1/operators/congestion", headers=bearer(token), timeout=10
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    wait_for(lambda: wanted <= {e["edge"] for e in view()["edges"]}, timeout_s=3)
    response = httpx.get(f"{url}/api/v1/operators/congestion", headers=bearer(token), timeout=10)
    body = response.json()
    assert body["k"] == 2
    by_edge = {e["edge"]: e for e in body["edges"]}
    crowd = by_edge[EDGES["view"]["edge"]]
    assert crowd["contributors"] == 2
    assert crowd["multiplier"] > 1
    assert crowd["operator_decision"] is None
    confirmed_edge = by_edge[EDGES["confirm"]["edge"]]
    assert confirmed_edge["contributors"] is None  # one voice: hidden, the operator stands
    assert confirmed_edge["operator_decision"] == "confirmed"
    # every edge shown has k voices or an operator behind it
    assert all(e["contributors"] is None or e["contributors"] >= 2 for e in body["edges"])
    assert EDGES["single"]["edge"] not in by_edge
    text = response.text
    for contributor in tokens:
        assert contributor not in text
        assert contributor_key(contributor, SECRET.encode()) not in text
    for ack in ids:
        assert ack["report_id"] not in text
    assert "lat" not in text
    assert "lon" not in text


# -- the contributor secret ----------------------------------------------------------------


def test_a_generated_secret_is_kept_private_and_stable_embedded(
    tmp_path: Path, poa_base: CityBase
) -> None:
    settings = report_settings("embedded", tmp_path, contributor_secret=None, live_feeds=False)
    with serve(settings, poa_base):
        pass
    secret_file = settings.secret_file
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    first = secret_file.read_text()
    assert len(bytes.fromhex(first.strip())) == 32
    with serve(settings, poa_base) as url:
        token = new_token()
        assert post_report(url, report_at("lonely"), token, new_address()).status_code == 202
    assert secret_file.read_text() == first


def test_a_generated_secret_survives_restarts_with_redis(
    tmp_path: Path, poa_base: CityBase
) -> None:
    settings = report_settings("redis", tmp_path, contributor_secret=None, live_feeds=False)
    token = new_token()
    try:
        with serve(settings, poa_base) as url:
            ack = post_report(url, report_at("lonely"), token, new_address()).json()
        with serve(settings, poa_base) as url, client() as http:
            export = http.get(f"{url}/api/v1/me/reports", headers={TOKEN_HEADER: token}).json()
        assert [r["report_id"] for r in export["reports"]] == [ack["report_id"]]
        assert not settings.secret_file.exists()
    finally:
        delete_prefix(settings.redis_prefix)


def test_limits_can_be_raised_by_settings_and_unknown_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crowdsource.desk import abuse_limits

    assert abuse_limits({"address_per_minute": 1e6}).address_per_minute == 1_000_000
    with pytest.raises(ValueError, match="unknown abuse limits"):
        abuse_limits({"adress_per_minute": 5})
    monkeypatch.setenv("CORRESPONDANCE_REPORT_LIMITS", '{"token_per_hour": 5}')
    assert Settings().report_limits == {"token_per_hour": 5}


# -- Redis down: 503 -----------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on a free port (this test kills it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: _pings(url), timeout_s=10)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def _pings(url: str) -> bool:
    try:
        r = redis.Redis.from_url(url, socket_timeout=1)
        try:
            return bool(r.ping())
        finally:
            r.close()
    except redis.ConnectionError:
        return False


def test_reports_answer_503_when_redis_is_down(
    own_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path, poa_base: CityBase
) -> None:
    url_redis, process = own_redis
    settings = report_settings("redis", tmp_path, redis_url=url_redis, live_feeds=False)
    token = new_token()
    with serve(settings, poa_base) as url:
        assert post_report(url, report_at("lonely"), token, new_address()).status_code == 202
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        with client(new_address()) as http:
            for method, path, body in [
                ("POST", "/api/v1/reports", report_at("lonely", level=2)),
                ("POST", "/api/v1/reports/batch", {"reports": [report_at("lonely", level=3)]}),
                ("GET", "/api/v1/me/reports", None),
                ("DELETE", "/api/v1/me/reports", None),
            ]:
                started = time.monotonic()
                response = http.request(
                    method, f"{url}{path}", json=body, headers={TOKEN_HEADER: token}
                )
                assert time.monotonic() - started < 8
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["error"]["code"] == "store_unavailable"
                assert "Retry-After" in response.headers
