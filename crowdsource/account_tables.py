"""Where operator accounts live: in the state store, or in a file for the embedded server.

:class:`StoreOperatorAccounts` keeps them in the state store, for deployments on Redis that
every process shares; :class:`FileOperatorAccounts` keeps them in a JSON file
(``var/operators.json``) for the embedded one-process server, whose in-memory store a CLI
process cannot reach. :func:`open_operator_accounts` picks the one that matches a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher

from correspondance.errors import ConfigError
from correspondance.store import StateStore

if TYPE_CHECKING:  # the CLI manages accounts without loading the routing stack
    pass

from crowdsource.accounts import (
    ACCOUNTS_KEY,
    OPERATORS_FILE_FORMAT,
    OperatorAccounts,
    OperatorExistsError,
)


class StoreOperatorAccounts(OperatorAccounts):
    """Accounts in the state store (hash ``operator:accounts``): shared through Redis.

    Parameters
    ----------
    store : StateStore
        Holds accounts, sessions and counters.
    hasher : PasswordHasher, optional
        argon2 parameters.
    """

    async def find_password_hash(self, username: str) -> str | None:
        """Return the argon2 hash of an account's password, or ``None``."""
        raw = await self.store.hget(ACCOUNTS_KEY, username)
        if raw is None:
            return None
        password_hash: str = json.loads(raw)["password_hash"]
        return password_hash

    async def _insert(self, username: str, record: dict[str, str]) -> None:
        # The store has no "set if absent" on hash fields; a per-username lock makes the
        # check-then-set atomic across processes.
        lock, owner = f"operator-add:{username}", uuid.uuid4().hex
        if not await self.store.acquire_lock(lock, owner, ttl_s=30):
            raise OperatorExistsError(f"operator {username!r} is being created right now")
        try:
            if await self.store.hget(ACCOUNTS_KEY, username) is not None:
                raise OperatorExistsError(f"operator {username!r} already exists")
            await self.store.hset(ACCOUNTS_KEY, {username: json.dumps(record).encode()})
        finally:
            await self.store.release_lock(lock, owner)

    async def _find_record(self, username: str) -> dict[str, str] | None:
        raw = await self.store.hget(ACCOUNTS_KEY, username)
        if raw is None:
            return None
        record: dict[str, str] = json.loads(raw)
        return record

    async def _replace(self, username: str, record: dict[str, str] | None) -> bool:
        lock, owner = f"operator-add:{username}", uuid.uuid4().hex
        if not await self.store.acquire_lock(lock, owner, ttl_s=30):
            raise OperatorExistsError(f"operator {username!r} is being changed right now")
        try:
            if await self.store.hget(ACCOUNTS_KEY, username) is None:
                return False
            if record is None:
                await self.store.hdel(ACCOUNTS_KEY, username)
            else:
                await self.store.hset(ACCOUNTS_KEY, {username: json.dumps(record).encode()})
            return True
        finally:
            await self.store.release_lock(lock, owner)

    async def usernames(self) -> list[str]:
        """Return every operator's username, sorted."""
        return sorted(await self.store.hgetall(ACCOUNTS_KEY))


class FileOperatorAccounts(OperatorAccounts):
    """Accounts in a JSON file of argon2 hashes, for the embedded (one-process) server.

    The file is read on every lookup, so an account added by ``correspondance operator add``
    works at once, without restarting the server. Writes take an exclusive lock on a
    sidecar ``.lock`` file and replace the file atomically, readable by its owner only.

    Parameters
    ----------
    path : Path
        The accounts file (created on the first ``add``; missing means no accounts).
    store : StateStore
        Holds sessions and failed-login counters.
    hasher : PasswordHasher, optional
        argon2 parameters.
    """

    def __init__(
        self, path: Path, store: StateStore, *, hasher: PasswordHasher | None = None
    ) -> None:
        super().__init__(store, hasher=hasher)
        self.path = path

    async def find_password_hash(self, username: str) -> str | None:
        """Return the argon2 hash of an account's password, or ``None``.

        Raises
        ------
        ConfigError
            If the file is not a valid operators file.
        """
        accounts = await asyncio.to_thread(self._read)
        record = accounts.get(username)
        return record["password_hash"] if record else None

    async def _insert(self, username: str, record: dict[str, str]) -> None:
        await asyncio.to_thread(self._insert_locked, username, record)

    async def _find_record(self, username: str) -> dict[str, str] | None:
        return (await asyncio.to_thread(self._read)).get(username)

    async def _replace(self, username: str, record: dict[str, str] | None) -> bool:
        return await asyncio.to_thread(self._replace_locked, username, record)

    async def usernames(self) -> list[str]:
        """Return every operator's username, sorted.

        Raises
        ------
        ConfigError
            If the file is not a valid operators file.
        """
        return sorted(await asyncio.to_thread(self._read))

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the operators file: {exc}") from exc
        accounts = raw.get("operators") if isinstance(raw, dict) else None
        if not isinstance(accounts, dict) or raw.get("format") != OPERATORS_FILE_FORMAT:
            raise ConfigError(
                f"{self.path}: not an operators file (expected format {OPERATORS_FILE_FORMAT!r})"
            )
        for name, record in accounts.items():
            if not (
                isinstance(record, dict)
                and isinstance(record.get("password_hash"), str)
                and record["password_hash"].startswith("$argon2")
            ):
                raise ConfigError(f"{self.path}: operator {name!r} has no argon2 password_hash")
        return accounts

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _insert_locked(self, username: str, record: dict[str, str]) -> None:
        with self._locked():
            accounts = self._read()
            if username in accounts:
                raise OperatorExistsError(f"operator {username!r} already exists")
            accounts[username] = record
            self._write(accounts)

    def _replace_locked(self, username: str, record: dict[str, str] | None) -> bool:
        with self._locked():
            accounts = self._read()
            if username not in accounts:
                return False
            if record is None:
                del accounts[username]
            else:
                accounts[username] = record
            self._write(accounts)
            return True

    def _write(self, accounts: dict[str, dict[str, str]]) -> None:
        """Replace the file atomically (the caller holds the lock)."""
        body = {"format": OPERATORS_FILE_FORMAT, "operators": accounts}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp makes it 0600
                json.dump(body, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def open_operator_accounts(store: StateStore, operators_file: Path) -> OperatorAccounts:
    """Open the account table that matches a deployment.

    Parameters
    ----------
    store : StateStore
        The process's store. On Redis, accounts live there too, shared by every process.
    operators_file : Path
        Where the embedded (in-memory store) deployment keeps accounts, since another
        process cannot reach its memory.

    Returns
    -------
    OperatorAccounts
        :class:`StoreOperatorAccounts` on a shared store, else :class:`FileOperatorAccounts`.
    """
    if store.backend == "redis":
        return StoreOperatorAccounts(store)
    return FileOperatorAccounts(operators_file, store)
