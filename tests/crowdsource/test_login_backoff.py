"""The operator login backoff per account (issue 11, finding 3): guesses spread over many
addresses are throttled, with a doubling backoff, and never lock the real operator out of
an address they logged in from before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from correspondance.store import MemoryStateStore
from crowdsource.account_tables import FileOperatorAccounts
from crowdsource.accounts import (
    ACCOUNT_FREE_ATTEMPTS,
    InvalidCredentialsError,
    OperatorAccounts,
    TooManyAttemptsError,
)

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[OperatorAccounts]:
    async with MemoryStateStore() as store:
        cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
        table = FileOperatorAccounts(tmp_path / "operators.json", store, hasher=cheap)
        await table.add("ana", PASSWORD)
        yield table


async def guess(accounts: OperatorAccounts, client: str) -> str:
    try:
        await accounts.login("ana", "not the password", client)
    except InvalidCredentialsError:
        return "401"
    except TooManyAttemptsError:
        return "429"
    return "200"


async def test_ten_addresses_times_five_guesses_are_throttled(accounts: OperatorAccounts) -> None:
    answers = [await guess(accounts, f"10.0.0.{a}") for a in range(1, 11) for _ in range(5)]
    # the free attempts, then one through (the first backoff period starts), then refused
    assert answers[: ACCOUNT_FREE_ATTEMPTS + 1] == ["401"] * (ACCOUNT_FREE_ATTEMPTS + 1)
    assert answers[ACCOUNT_FREE_ATTEMPTS + 1 :] == ["429"] * (49 - ACCOUNT_FREE_ATTEMPTS)


async def test_the_backoff_doubles_and_tells_how_long(accounts: OperatorAccounts) -> None:
    for a in range(ACCOUNT_FREE_ATTEMPTS + 1):
        assert await guess(accounts, f"10.0.1.{a}") == "401"
    with pytest.raises(TooManyAttemptsError) as first:
        await accounts.login("ana", PASSWORD, "10.0.2.1")  # even the right password
    assert first.value.retry_after_s == 2
    await asyncio.sleep(2.1)
    assert await guess(accounts, "10.0.2.2") == "401"  # one attempt per period
    with pytest.raises(TooManyAttemptsError) as second:
        await accounts.login("ana", PASSWORD, "10.0.2.3")
    assert 2 < second.value.retry_after_s <= 8  # refused attempts count too: it grew


async def test_an_address_the_operator_logged_in_from_skips_the_account_backoff(
    accounts: OperatorAccounts,
) -> None:
    assert (await accounts.login("ana", PASSWORD, "192.0.2.50")).username == "ana"
    for a in range(30):
        await guess(accounts, f"10.0.3.{a}")
    assert await guess(accounts, "10.0.3.99") == "429"
    issued = await accounts.login("ana", PASSWORD, "192.0.2.50")
    assert issued.username == "ana"
    # the per-address limit still holds for that address
    for _ in range(5):
        assert await guess(accounts, "192.0.2.50") == "401"
    with pytest.raises(TooManyAttemptsError):
        await accounts.login("ana", PASSWORD, "192.0.2.50")
