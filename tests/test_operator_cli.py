"""``correspondance operator add|list``, run as a real subprocess against both persistences.

Without ``REDIS_URL`` accounts go to the operators file the embedded server reads; with it,
to Redis (here under a random key prefix, deleted afterwards).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from correspondance.settings import REPO_ROOT
from correspondance.store import RedisStateStore
from crowdsource.account_tables import StoreOperatorAccounts

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "correct horse battery staple"


def run_operator(
    *args: str, env: dict[str, str], stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "operator", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture
def file_env(tmp_path: Path) -> dict[str, str]:
    """Embedded deployment: accounts in a temporary operators file."""
    return clean_env() | {"CORRESPONDANCE_OPERATORS_FILE": str(tmp_path / "var" / "operators.json")}


@pytest.fixture
def redis_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Redis deployment under a random key prefix (and an operators file that must stay unused)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield clean_env() | {
        "REDIS_URL": REDIS_URL,
        "CORRESPONDANCE_REDIS_PREFIX": prefix,
        "CORRESPONDANCE_OPERATORS_FILE": str(tmp_path / "unused.json"),
    }
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["file", "redis"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each persistence in turn."""
    chosen: dict[str, str] = request.getfixturevalue(f"{request.param}_env")
    return chosen


def with_password(env: dict[str, str], password: str = PASSWORD) -> dict[str, str]:
    return env | {"CORRESPONDANCE_OPERATOR_PASSWORD": password}


def test_add_then_list(env: dict[str, str]) -> None:
    assert run_operator("list", env=env).stdout == ""
    for name in ("night-shift", "ana.souza"):
        result = run_operator("add", "--username", name, env=with_password(env))
        assert result.returncode == 0, result.stderr
        assert f"operator '{name}' added to " in result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    listed = run_operator("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "ana.souza\nnight-shift\n"


def test_an_existing_username_exits_2_and_keeps_the_first_password(env: dict[str, str]) -> None:
    assert run_operator("add", "--username", "ana", env=with_password(env)).returncode == 0
    result = run_operator(
        "add", "--username", "ana", env=with_password(env, "another long password")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "correspondance operator: error: operator 'ana' already exists"
    )
    assert run_operator("list", env=env).stdout == "ana\n"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("ab", PASSWORD, "username 'ab' must be 3–32 characters of a-z, 0-9, '.', '_' or '-'"),
        ("Ana", PASSWORD, "username 'Ana' must be 3–32 characters of a-z, 0-9, '.', '_' or '-'"),
        ("ana", "short pass", "password must be at least 12 characters (got 10)"),
    ],
)
def test_bad_input_exits_2_naming_the_field(
    env: dict[str, str], username: str, password: str, message: str
) -> None:
    result = run_operator("add", "--username", username, env=with_password(env, password))
    assert result.returncode == 2
    assert result.stderr.strip() == f"correspondance operator: error: {message}"
    assert password not in result.stderr
    assert run_operator("list", env=env).stdout == ""


def test_without_a_password_source_it_exits_2_naming_the_variable(
    file_env: dict[str, str],
) -> None:
    result = run_operator("add", "--username", "ana", env=file_env)  # stdin is not a terminal
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "correspondance operator: error: password: set CORRESPONDANCE_OPERATOR_PASSWORD "
        "or run in a terminal to type it"
    )
    assert not Path(file_env["CORRESPONDANCE_OPERATORS_FILE"]).exists()


def test_a_password_is_never_taken_as_an_argument(file_env: dict[str, str]) -> None:
    result = run_operator("add", "--username", "ana", "--password", PASSWORD, env=file_env)
    assert result.returncode == 2
    assert "unrecognized arguments: --password" in result.stderr
    assert not Path(file_env["CORRESPONDANCE_OPERATORS_FILE"]).exists()


def test_the_operators_file_holds_only_an_argon2id_hash_and_is_private(
    file_env: dict[str, str],
) -> None:
    result = run_operator("add", "--username", "ana", env=with_password(file_env))
    assert result.returncode == 0, result.stderr
    path = Path(file_env["CORRESPONDANCE_OPERATORS_FILE"])
    assert result.stderr.strip() == f"operator 'ana' added to {path}"
    text = path.read_text()
    assert PASSWORD not in text
    record = json.loads(text)["operators"]["ana"]
    assert record["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_with_redis_the_account_lands_in_redis_only(redis_env: dict[str, str]) -> None:
    result = run_operator("add", "--username", "ana", env=with_password(redis_env))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "operator 'ana' added to Redis (REDIS_URL)"
    assert not Path(redis_env["CORRESPONDANCE_OPERATORS_FILE"]).exists()

    async def check() -> tuple[list[str], bool]:
        store = RedisStateStore(REDIS_URL, prefix=redis_env["CORRESPONDANCE_REDIS_PREFIX"])
        async with store:
            accounts = StoreOperatorAccounts(store)
            return await accounts.usernames(), await accounts.verify("ana", PASSWORD)

    assert asyncio.run(check()) == (["ana"], True)


def test_an_unreachable_redis_exits_2(file_env: dict[str, str]) -> None:
    env = with_password(file_env) | {"REDIS_URL": "redis://127.0.0.1:1/0"}
    result = run_operator("add", "--username", "ana", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("correspondance operator: error: ")
    assert "127.0.0.1:1" in result.stderr
    assert not Path(file_env["CORRESPONDANCE_OPERATORS_FILE"]).exists()


def test_remove_deletes_the_account_and_an_unknown_one_exits_2(env: dict[str, str]) -> None:
    for name in ("ana", "bruno"):
        assert run_operator("add", "--username", name, env=with_password(env)).returncode == 0
    result = run_operator("remove", "--username", "ana", env=env)
    assert result.returncode == 0, result.stderr
    assert "operator 'ana' removed from " in result.stderr
    assert run_operator("list", env=env).stdout == "bruno\n"
    again = run_operator("remove", "--username", "ana", env=env)
    assert again.returncode == 2
    assert again.stderr.startswith("correspondance operator: error: no operator named 'ana' in ")


def test_reset_password_replaces_the_password(env: dict[str, str], tmp_path: Path) -> None:
    assert run_operator("add", "--username", "ana", env=with_password(env)).returncode == 0
    new = "a brand new long passphrase"
    result = run_operator("reset-password", "--username", "ana", env=with_password(env, new))
    assert result.returncode == 0, result.stderr
    assert "operator 'ana': password reset in " in result.stderr
    assert new not in result.stdout + result.stderr

    async def verify() -> tuple[bool, bool]:
        from correspondance.store import MemoryStateStore, StateStore
        from crowdsource.account_tables import open_operator_accounts

        store: StateStore
        if "REDIS_URL" in env:
            store = RedisStateStore(REDIS_URL, prefix=env["CORRESPONDANCE_REDIS_PREFIX"])
        else:
            store = MemoryStateStore()
        async with store:
            accounts = open_operator_accounts(store, Path(env["CORRESPONDANCE_OPERATORS_FILE"]))
            return await accounts.verify("ana", new), await accounts.verify("ana", PASSWORD)

    assert asyncio.run(verify()) == (True, False)


def test_reset_password_of_an_unknown_operator_or_short_password_exits_2(
    env: dict[str, str],
) -> None:
    unknown = run_operator("reset-password", "--username", "nobody", env=with_password(env))
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "correspondance operator: error: no operator named 'nobody'"
    assert run_operator("add", "--username", "ana", env=with_password(env)).returncode == 0
    short = run_operator("reset-password", "--username", "ana", env=with_password(env, "short"))
    assert short.returncode == 2
    assert "password must be at least 12 characters" in short.stderr
