"""Operator accounts, sessions and decisions: the domain on both backends, then real HTTP.

Accounts live in Redis when the deployment has one, in an operators file when embedded;
every rule is checked on both. HTTP tests run real uvicorn servers of Porto Alegre, one per
deployment kind, whose operators are added through the same persistence the server reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from processes import delete_prefix
from report_helpers import serve

from correspondance.settings import REPO_ROOT, Settings
from correspondance.store import MemoryStateStore, RedisStateStore, StateStore
from crowdsource.account_tables import (
    FileOperatorAccounts,
    StoreOperatorAccounts,
    open_operator_accounts,
)
from crowdsource.accounts import (
    LOGIN_WINDOW_S,
    InvalidCredentialsError,
    InvalidOperatorError,
    OperatorAccounts,
    OperatorExistsError,
    TooManyAttemptsError,
)
from crowdsource.operators import confirm_key, dismiss_key, incident_key
from routing.base import CityBase

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
PASSWORD = "correct horse battery staple"
CITY = "porto-alegre"
CENTRE = (-30.0346, -51.2177)  # Praça XV, downtown Porto Alegre
LISBON = (38.7223, -9.1393)
T = TypeVar("T")


# -- the domain, on both account backends --------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["file", "redis"])
async def accounts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OperatorAccounts]:
    """Fresh, empty operator accounts of each kind."""
    if request.param == "file":
        async with MemoryStateStore() as store:
            yield open_operator_accounts(store, tmp_path / "operators.json")
        return
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        async with RedisStateStore(REDIS_URL, prefix=prefix) as store:
            yield open_operator_accounts(store, tmp_path / "unused.json")
    finally:
        delete_prefix(prefix)


async def stored_bytes(accounts: OperatorAccounts) -> bytes:
    """Every key and value the accounts left at rest (store and file), as one blob."""
    store = accounts.store
    blob = b""
    for key in await store.scan_keys():
        blob += key.encode()
        try:
            blob += (await store.get(key)) or b""
        except TypeError:  # a hash: StoreTypeError subclasses TypeError
            blob += b"".join(k.encode() + v for k, v in (await store.hgetall(key)).items())
    if isinstance(accounts, FileOperatorAccounts) and accounts.path.exists():
        blob += accounts.path.read_bytes()
    return blob


@pytest.mark.anyio
async def test_the_backend_follows_the_store(accounts: OperatorAccounts) -> None:
    expected = StoreOperatorAccounts if accounts.store.backend == "redis" else FileOperatorAccounts
    assert type(accounts) is expected


@pytest.mark.anyio
async def test_there_are_no_default_accounts(accounts: OperatorAccounts) -> None:
    assert await accounts.usernames() == []
    for username, password in [("admin", "admin"), ("operator", "operator"), ("admin", "")]:
        assert await accounts.verify(username, password) is False


@pytest.mark.anyio
async def test_added_operator_verifies_with_its_password_only(accounts: OperatorAccounts) -> None:
    await accounts.add("ana.souza", PASSWORD)
    await accounts.add("night-shift_2", "another long passphrase")
    assert await accounts.usernames() == ["ana.souza", "night-shift_2"]
    assert await accounts.verify("ana.souza", PASSWORD) is True
    assert await accounts.verify("ana.souza", "another long passphrase") is False
    assert await accounts.verify("ana.souza", PASSWORD.upper()) is False
    assert await accounts.verify("nobody", PASSWORD) is False
    assert await accounts.verify("ana.souza", PASSWORD + "x" * 2000) is False


@pytest.mark.anyio
async def test_only_an_argon2id_hash_is_stored(accounts: OperatorAccounts) -> None:
    await accounts.add("ana.souza", PASSWORD)
    password_hash = await accounts.find_password_hash("ana.souza")
    assert password_hash is not None
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD.encode() not in await stored_bytes(accounts)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("ab", PASSWORD, "username"),
        ("a" * 33, PASSWORD, "username"),
        ("Ana", PASSWORD, "username"),
        ("ana souza", PASSWORD, "username"),
        ("ana/../x", PASSWORD, "username"),
        ("ana", "elevenchars", "password"),
        ("ana", "", "password"),
        ("ana", "x" * 1025, "password"),
    ],
)
async def test_bad_usernames_and_passwords_are_refused_naming_the_field(
    accounts: OperatorAccounts, username: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidOperatorError, match=f"^{field} ") as caught:
        await accounts.add(username, password)
    assert caught.value.field == field
    assert caught.value.code == "invalid_operator"
    assert await accounts.usernames() == []


@pytest.mark.anyio
async def test_an_existing_username_is_refused_and_keeps_its_password(
    accounts: OperatorAccounts,
) -> None:
    await accounts.add("ana", PASSWORD)
    with pytest.raises(OperatorExistsError, match="operator 'ana' already exists"):
        await accounts.add("ana", "a different long password")
    assert await accounts.verify("ana", PASSWORD) is True


@pytest.mark.anyio
async def test_concurrent_adds_of_one_username_create_it_once(accounts: OperatorAccounts) -> None:
    results = await asyncio.gather(
        *(accounts.add("ana", f"password number {i:02d}") for i in range(4)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, OperatorExistsError) for r in results if r is not None)
    winner = next(i for i, r in enumerate(results) if r is None)
    assert await accounts.verify("ana", f"password number {winner:02d}") is True


@pytest.mark.anyio
async def test_an_unknown_username_costs_as_much_as_a_wrong_password(
    accounts: OperatorAccounts,
) -> None:
    await accounts.add("ana", PASSWORD)

    async def fastest(username: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            assert await accounts.verify(username, "wrong password!") is False
            times.append(time.perf_counter() - started)
        return min(times)

    wrong_password, unknown_user = await fastest("ana"), await fastest("nobody")
    # both run one argon2 verification (tens of ms); a plain lookup would take microseconds
    assert unknown_user > 0.5 * wrong_password
    assert wrong_password > 0.01


@pytest.mark.anyio
async def test_tokens_are_random_and_only_their_hash_is_stored(
    accounts: OperatorAccounts,
) -> None:
    await accounts.add("ana", PASSWORD)
    first, second = await accounts.issue_token("ana"), await accounts.issue_token("ana")
    assert first != second
    assert len(first) == 43  # 256 bits, URL-safe base64
    assert await accounts.resolve(first) == "ana"
    keys = await accounts.store.scan_keys("operator:token:*")
    assert len(keys) == 2
    at_rest = await stored_bytes(accounts)
    assert first.encode() not in at_rest
    assert second.encode() not in at_rest
    for key in keys:
        ttl = await accounts.store.ttl(key)
        assert ttl is not None
        assert 890 < ttl <= 900
        record = json.loads((await accounts.store.get(key)) or b"")
        assert record["username"] == "ana"


@pytest.mark.anyio
async def test_revoked_expired_and_garbage_tokens_resolve_to_nobody(
    accounts: OperatorAccounts,
) -> None:
    await accounts.add("ana", PASSWORD)
    kept, revoked = await accounts.issue_token("ana"), await accounts.issue_token("ana")
    short = await accounts.issue_token("ana", ttl_s=1)
    assert await accounts.revoke(revoked) is True
    assert await accounts.revoke(revoked) is False
    assert await accounts.resolve(revoked) is None
    assert await accounts.resolve(short) == "ana"
    await asyncio.sleep(1.1)
    assert await accounts.resolve(short) is None
    assert await accounts.resolve(kept) == "ana"
    for garbage in ["", "garbage", kept[:-1], kept + "A", "A" * 43, kept.replace(kept[0], "!")]:
        assert await accounts.resolve(garbage) is None


@pytest.mark.anyio
async def test_tokens_are_issued_only_to_existing_operators(accounts: OperatorAccounts) -> None:
    with pytest.raises(InvalidOperatorError, match="no operator named 'ghost'"):
        await accounts.issue_token("ghost")
    await accounts.add("ana", PASSWORD)
    with pytest.raises(InvalidOperatorError, match="ttl_s must be > 0"):
        await accounts.issue_token("ana", ttl_s=0)


@pytest.mark.anyio
async def test_five_failed_logins_lock_that_username_and_client_out(
    accounts: OperatorAccounts,
) -> None:
    await accounts.add("ana", PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidCredentialsError, match="wrong username or password"):
            await accounts.login("ana", "not the password", "10.0.0.1")
    with pytest.raises(TooManyAttemptsError) as caught:
        await accounts.login("ana", PASSWORD, "10.0.0.1")  # even the right password
    assert 1 <= caught.value.retry_after_s <= LOGIN_WINDOW_S
    # another address, or another username from the same address, is not locked out
    issued = await accounts.login("ana", PASSWORD, "10.0.0.2")
    assert issued.username == "ana"
    assert issued.expires_in_s == 900
    assert await accounts.resolve(issued.token) == "ana"
    assert b"10.0.0.1" not in await stored_bytes(accounts)


@pytest.mark.anyio
async def test_a_successful_login_clears_the_failure_count(accounts: OperatorAccounts) -> None:
    await accounts.add("ana", PASSWORD)
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(InvalidCredentialsError):
                await accounts.login("ana", "not the password", "10.0.0.1")
        await accounts.login("ana", PASSWORD, "10.0.0.1")


@pytest.mark.anyio
async def test_the_operators_file_is_private_and_rejects_tampering(tmp_path: Path) -> None:
    path = tmp_path / "var" / "operators.json"
    async with MemoryStateStore() as store:
        accounts = FileOperatorAccounts(path, store)
        await accounts.add("ana", PASSWORD)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        body = json.loads(path.read_text())
        assert body["format"] == "correspondance-operators/1"
        assert set(body["operators"]) == {"ana"}
        body["operators"]["mallory"] = {"password_hash": "plain text"}
        path.write_text(json.dumps(body))
        with pytest.raises(ValueError, match="operator 'mallory' has no argon2 password_hash"):
            await accounts.usernames()
        path.write_text("[]")
        with pytest.raises(ValueError, match="not an operators file"):
            await accounts.usernames()
        path.write_text("{not json")
        with pytest.raises(ValueError, match="cannot read the operators file"):
            await accounts.verify("ana", PASSWORD)


# -- over HTTP ----------------------------------------------------------------------------


@dataclass
class OperatorApi:
    """A running server and a way to reach the same operator accounts and store."""

    url: str
    settings: Settings

    def call(self, use: Callable[[OperatorAccounts], Awaitable[T]]) -> T:
        """Run ``use`` on accounts backed by what the server reads (not its memory store)."""

        async def run() -> T:
            if self.settings.redis_url:
                store: StateStore = RedisStateStore(REDIS_URL, prefix=self.settings.redis_prefix)
            else:
                store = MemoryStateStore()
            async with store:
                return await use(open_operator_accounts(store, self.settings.operators_file))

        return asyncio.run(run())

    def add(self, username: str, password: str = PASSWORD) -> None:
        self.call(lambda accounts: accounts.add(username, password))

    def token(self, username: str, password: str = PASSWORD) -> str:
        response = httpx.post(
            f"{self.url}/api/v1/operators/token",
            json={"username": username, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def operator_settings(kind: str, folder: Path, **overrides: Any) -> Settings:
    return Settings(
        cache_dir=CACHE_DIR,
        live_feeds=False,
        redis_url=REDIS_URL if kind == "redis" else None,
        redis_prefix=f"test:{uuid.uuid4().hex}:",
        operators_file=folder / "operators.json",
        **overrides,
    )


@pytest.fixture(scope="module", params=["embedded", "redis"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase
) -> Iterator[OperatorApi]:
    """A server per deployment kind: embedded (operators file) and Redis (random prefix)."""
    settings = operator_settings(request.param, tmp_path_factory.mktemp("operators"))
    try:
        with serve(settings, poa_base) as url:
            yield OperatorApi(url, settings)
    finally:
        delete_prefix(settings.redis_prefix)


def new_operator(api: OperatorApi) -> tuple[str, str]:
    """A freshly added operator (unique per test, as servers are shared) and its token."""
    username = f"op-{uuid.uuid4().hex[:12]}"
    api.add(username)
    return username, api.token(username)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def at_centre(**fields: Any) -> dict[str, Any]:
    """An incident body at the city centre."""
    return {"lat": CENTRE[0], "lon": CENTRE[1], **fields}


# Every endpoint that needs an operator, with a body it would accept from one.
GUARDED = [
    ("GET", "/api/v1/operators/me", None),
    ("POST", "/api/v1/operators/logout", None),
    (
        "POST",
        "/api/v1/operators/incidents",
        {"lat": CENTRE[0], "lon": CENTRE[1], "kind": "closure"},
    ),
    ("POST", "/api/v1/operators/edges/10/confirm", {"level": 3}),
    ("POST", "/api/v1/operators/edges/10/dismiss", None),
]
GUARDED_IDS = [f"{method} {path.removeprefix('/api/v1/operators')}" for method, path, _ in GUARDED]


def assert_refused(url: str, headers: dict[str, str]) -> None:
    for method, path, body in GUARDED:
        response = httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized", (method, path)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer " + "A" * 43},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Token abc"},
    ],
    ids=["anonymous", "empty", "garbage", "well-formed-unknown", "basic-auth", "other-scheme"],
)
def test_the_default_server_refuses_every_operator_endpoint_without_a_token(
    api_url: str, headers: dict[str, str]
) -> None:
    assert_refused(api_url, headers)


def test_the_default_server_has_no_operator_to_log_in_as(api_url: str) -> None:
    for username, password in [("admin", "admin"), ("admin", "password"), ("operator", "")]:
        response = httpx.post(
            f"{api_url}/api/v1/operators/token",
            json={"username": username, "password": password},
            timeout=10,
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"


def test_anonymous_and_garbage_tokens_are_refused_and_store_nothing(api: OperatorApi) -> None:
    assert_refused(api.url, {})
    assert_refused(api.url, bearer("garbage"))
    assert api.call(lambda accounts: accounts.store.scan_keys("ops:*")) == []


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_an_expired_token_is_refused_everywhere(
    kind: str, tmp_path: Path, poa_base: CityBase
) -> None:
    settings = operator_settings(kind, tmp_path, operator_token_ttl_s=1)
    try:
        with serve(settings, poa_base) as url:
            running = OperatorApi(url, settings)
            running.add("ana")
            response = httpx.post(
                f"{url}/api/v1/operators/token", json={"username": "ana", "password": PASSWORD}
            )
            assert response.json()["expires_in"] == 1
            token = response.json()["access_token"]
            me = httpx.get(f"{url}/api/v1/operators/me", headers=bearer(token))
            assert me.status_code == 200
            time.sleep(1.2)
            assert_refused(url, bearer(token))
    finally:
        delete_prefix(settings.redis_prefix)


def test_login_me_and_logout(api: OperatorApi) -> None:
    username = f"op-{uuid.uuid4().hex[:12]}"
    api.add(username)
    response = httpx.post(
        f"{api.url}/api/v1/operators/token",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    token = body["access_token"]
    me = httpx.get(f"{api.url}/api/v1/operators/me", headers=bearer(token), timeout=10)
    assert me.status_code == 200
    assert me.json() == {"username": username}
    logout = httpx.post(f"{api.url}/api/v1/operators/logout", headers=bearer(token), timeout=10)
    assert logout.status_code == 204
    assert_refused(api.url, bearer(token))


def test_wrong_credentials_get_one_answer_whichever_part_is_wrong(api: OperatorApi) -> None:
    username, _ = new_operator(api)
    answers = []
    for credentials in [
        {"username": username, "password": "wrong password!"},
        {"username": "nobody-" + username, "password": PASSWORD},
        {"username": "Not A Username", "password": PASSWORD},
    ]:
        response = httpx.post(f"{api.url}/api/v1/operators/token", json=credentials, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        answers.append(response.json())
    assert (
        answers
        == [{"error": {"code": "invalid_credentials", "message": "wrong username or password"}}] * 3
    )


def test_malformed_login_bodies_are_400_naming_the_field(api: OperatorApi) -> None:
    response = httpx.post(f"{api.url}/api/v1/operators/token", json={"username": "ana"}, timeout=10)
    assert response.status_code == 400
    assert "password" in response.json()["error"]["message"]


def test_five_failed_logins_answer_429_with_retry_after(api: OperatorApi) -> None:
    username, _ = new_operator(api)
    url = f"{api.url}/api/v1/operators/token"
    wrong = {"username": username, "password": "wrong password!"}
    for _ in range(5):
        assert httpx.post(url, json=wrong, timeout=10).status_code == 401
    response = httpx.post(url, json={"username": username, "password": PASSWORD}, timeout=10)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_attempts"
    assert 1 <= int(response.headers["Retry-After"]) <= 300


def test_declaring_a_closure_stores_it_and_publishes_its_edges(
    api: OperatorApi, poa_base: CityBase
) -> None:
    username, token = new_operator(api)
    response = httpx.post(
        f"{api.url}/api/v1/operators/incidents",
        params={"city": CITY},
        json={"lat": CENTRE[0], "lon": CENTRE[1], "kind": "closure", "note": "Marathon"},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    incident = response.json()
    assert incident["kind"] == "closure"
    assert incident["declared_by"] == username
    assert incident["level"] is None
    drive = poa_base.streets["drive"]
    nearest = drive.snap(*CENTRE, 500).edge
    assert nearest in incident["edges"]
    assert all(0 <= e < drive.n_edges for e in incident["edges"])
    # the other edges are the same street in the other direction
    for edge in incident["edges"]:
        assert drive.way_id[edge] == drive.way_id[nearest]
        assert {int(drive.tail[edge]), int(drive.head[edge])} == {
            int(drive.tail[nearest]),
            int(drive.head[nearest]),
        }
    if not api.settings.redis_url:
        return  # the embedded store is the server's memory; Redis lets us look inside
    key = incident_key(CITY, incident["incident_id"])

    async def inspect(accounts: OperatorAccounts) -> tuple[bytes | None, float | None, list[Any]]:
        store = accounts.store
        return await store.get(key), await store.ttl(key), await store.read_events()

    stored, ttl, events = api.call(inspect)
    assert json.loads(stored or b"") == incident
    assert ttl is not None
    assert 4 * 3600 - 10 < ttl <= 4 * 3600
    declared = [e for e in events if e.type == "incident.declared"]
    assert declared[-1].city == CITY
    assert declared[-1].payload["edges"] == incident["edges"]
    assert declared[-1].payload["incident_id"] == incident["incident_id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        ({"lat": LISBON[0], "lon": LISBON[1], "kind": "incident"}, 422, "outside_city", "outside"),
        (at_centre(kind="closure", level=2), 400, None, "level"),
        (at_centre(kind="flood"), 400, None, "kind"),
        (at_centre(kind="incident", level=5), 400, None, "level"),
        (at_centre(kind="incident", note="x" * 501), 400, None, "note"),
        (at_centre(kind="incident", expires_in_s=10), 400, None, "expires_in_s"),
        ({"lat": 91, "lon": CENTRE[1], "kind": "incident"}, 400, None, "lat"),
    ],
    ids=["outside-city", "closure-level", "kind", "level", "note", "expiry", "latitude"],
)
def test_bad_incidents_are_refused_naming_the_problem(
    api: OperatorApi, body: dict[str, Any], status: int, code: str | None, named: str
) -> None:
    _, token = new_operator(api)
    response = httpx.post(
        f"{api.url}/api/v1/operators/incidents", json=body, headers=bearer(token), timeout=10
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == (code or "invalid_parameter")
    assert named in error["message"]


def test_confirm_then_dismiss_an_edge(api: OperatorApi, poa_base: CityBase) -> None:
    username, token = new_operator(api)
    edge = int(poa_base.streets["drive"].snap(*CENTRE, 500).edge)
    base_url = f"{api.url}/api/v1/operators/edges/{edge}"
    confirmed = httpx.post(
        f"{base_url}/confirm", json={"level": 3}, headers=bearer(token), timeout=10
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() | {"decided_at": None, "expires_at": None} == {
        "city": CITY,
        "edge": edge,
        "decision": "confirm",
        "level": 3,
        "decided_by": username,
        "decided_at": None,
        "expires_at": None,
    }
    if api.settings.redis_url:
        assert api.call(lambda a: a.store.exists(confirm_key(CITY, edge))) == 1
    dismissed = httpx.post(f"{base_url}/dismiss", headers=bearer(token), timeout=10)
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["decision"] == "dismiss"
    if not api.settings.redis_url:
        return

    async def inspect(accounts: OperatorAccounts) -> tuple[int, float | None, list[Any]]:
        store = accounts.store
        return (
            await store.exists(confirm_key(CITY, edge)),
            await store.ttl(dismiss_key(CITY, edge)),
            await store.read_events(),
        )

    confirm_left, dismiss_ttl, events = api.call(inspect)
    assert confirm_left == 0  # a dismissal replaces the confirmation
    assert dismiss_ttl is not None
    assert 3590 < dismiss_ttl <= 3600
    ours = [e for e in events if e.type.startswith("congestion.") and e.payload["edges"] == [edge]]
    assert [e.type for e in ours][-2:] == ["congestion.confirmed", "congestion.dismissed"]
    assert ours[-2].payload["level"] == 3


@pytest.mark.parametrize("edge", ["n_edges", "-1"])
def test_an_unknown_edge_is_404(api: OperatorApi, poa_base: CityBase, edge: str) -> None:
    _, token = new_operator(api)
    edge_id = str(poa_base.streets["drive"].n_edges) if edge == "n_edges" else edge
    for action in ("confirm", "dismiss"):
        response = httpx.post(
            f"{api.url}/api/v1/operators/edges/{edge_id}/{action}",
            headers=bearer(token),
            timeout=10,
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "unknown_edge"


def test_an_operator_added_by_the_cli_logs_in(api: OperatorApi) -> None:
    username = f"cli-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env.pop("REDIS_URL", None)
    env["CORRESPONDANCE_OPERATORS_FILE"] = str(api.settings.operators_file)
    env["CORRESPONDANCE_REDIS_PREFIX"] = api.settings.redis_prefix
    env["CORRESPONDANCE_OPERATOR_PASSWORD"] = PASSWORD
    if api.settings.redis_url:
        env["REDIS_URL"] = api.settings.redis_url
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "operator", "add", "--username", username],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    token = api.token(username)
    me = httpx.get(f"{api.url}/api/v1/operators/me", headers=bearer(token), timeout=10)
    assert me.json() == {"username": username}


@pytest.mark.anyio
async def test_removing_an_operator_ends_its_sessions(accounts: OperatorAccounts) -> None:
    await accounts.add("ana", PASSWORD)
    await accounts.add("bruno", PASSWORD)
    token = await accounts.issue_token("ana")
    other = await accounts.issue_token("bruno")
    assert await accounts.resolve(token) == "ana"
    assert await accounts.remove("ana") is True
    assert await accounts.resolve(token) is None
    assert await accounts.resolve(other) == "bruno"
    assert await accounts.usernames() == ["bruno"]
    assert await accounts.remove("ana") is False
    assert await accounts.remove("Not A Name") is False


@pytest.mark.anyio
async def test_a_password_reset_ends_older_sessions_only(accounts: OperatorAccounts) -> None:
    await accounts.add("ana", PASSWORD)
    before = await accounts.issue_token("ana")
    await asyncio.sleep(0.01)
    await accounts.reset_password("ana", "another long passphrase")
    assert await accounts.resolve(before) is None
    assert await accounts.verify("ana", PASSWORD) is False
    assert await accounts.verify("ana", "another long passphrase") is True
    after = await accounts.issue_token("ana")
    assert await accounts.resolve(after) == "ana"
    with pytest.raises(InvalidOperatorError, match="no operator named 'nobody'"):
        await accounts.reset_password("nobody", "another long passphrase")
    with pytest.raises(InvalidOperatorError, match="at least 12 characters"):
        await accounts.reset_password("ana", "short")
