"""Operator accounts, short-lived sessions, and operator decisions on live congestion.

No HTTP here: ``api/routes/operators.py`` is a thin adapter over this module.

Accounts
    Created only from the command line (``correspondance operator add``); there are no
    default accounts. Passwords are kept as argon2id hashes, never in clear. Two account
    tables share one interface (:class:`OperatorAccounts`): :class:`StoreOperatorAccounts`
    keeps them in the state store, for deployments on Redis that every process shares;
    :class:`FileOperatorAccounts` keeps them in a JSON file (``var/operators.json``) for the
    embedded one-process server, whose in-memory store a CLI process cannot reach.
    :func:`open_operator_accounts` picks the one that matches a store.

Sessions
    A bearer token is 256 random bits shown once to the operator; the store keeps only its
    SHA-256 (``operator:token:<sha256 hex>`` → username and expiry) with a TTL, so a leaked
    store dump holds no usable token, and a token dies on its own after ``ttl_s``.

Decisions
    :class:`OperatorDecisions` records confirmations, dismissals and declared incidents under
    the ``ops:<city>:...`` keys documented in ``crowdsource/README.md`` and publishes one
    event per decision. It does not fuse anything: the fusion engine reads those keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from correspondance.errors import ConfigError, CorrespondanceError, InputError
from correspondance.store import StateStore
from correspondance.store.base import utc_now
from crowdsource.audit import AuditLog
from routing.errors import OutsideCityError

if TYPE_CHECKING:  # the CLI manages accounts without loading the routing stack
    from routing.base import CityBase
    from routing.streets import StreetNetwork

USERNAME_PATTERN = re.compile(r"^[a-z0-9._-]{3,32}$")
MIN_PASSWORD_LENGTH = 12
# Hashing cost grows with the input; nobody types a longer password.
MAX_PASSWORD_LENGTH = 1024
DEFAULT_TOKEN_TTL_S = 900.0
MAX_TOKEN_TTL_S = 86_400.0
# Failed logins allowed per username and client address within the window.
MAX_FAILED_LOGINS = 5
LOGIN_WINDOW_S = 300.0
# Per account, from addresses that never logged in to it: this many attempts per window
# are free; after that one attempt per backoff period, doubling from 2 s up to 15 min, so
# guesses spread over many addresses are throttled too. Addresses the account logged in
# from before (remembered for KNOWN_ADDRESS_TTL_S) skip this backoff: the real operator
# is never locked out of their own account by someone else's guessing.
ACCOUNT_FREE_ATTEMPTS = 10
ACCOUNT_WINDOW_S = 900.0
ACCOUNT_BACKOFF_MIN_S = 2.0
ACCOUNT_BACKOFF_MAX_S = 900.0
KNOWN_ADDRESS_TTL_S = 30 * 86_400.0

ACCOUNTS_KEY = "operator:accounts"
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
OPERATORS_FILE_FORMAT = "correspondance-operators/1"

IncidentKind = Literal["closure", "incident"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = ("closure", "incident")
DEFAULT_INCIDENT_TTL_S = 4 * 3600
DEFAULT_DECISION_TTL_S = 3600
MAX_DECISION_TTL_S = 7 * 86_400
MIN_DECISION_TTL_S = 60
MAX_NOTE_LENGTH = 500

INCIDENT_DECLARED = "incident.declared"
INCIDENT_ENDED = "incident.ended"
MAX_INCIDENT_EDGES = 200
CONGESTION_CONFIRMED = "congestion.confirmed"
CONGESTION_DISMISSED = "congestion.dismissed"


# -- errors --------------------------------------------------------------------------------


class OperatorError(CorrespondanceError):
    """Base of operator account and session errors."""

    code = "operator_error"


class InvalidCredentialsError(OperatorError, PermissionError):
    """Wrong username or password (which of the two is never said)."""

    code = "invalid_credentials"


class NotAuthenticatedError(OperatorError, PermissionError):
    """A call that needs an operator came without a valid, unexpired bearer token."""

    code = "unauthorized"


class OperatorExistsError(OperatorError, ValueError):
    """An account with that username already exists."""

    code = "operator_exists"


class InvalidOperatorError(OperatorError, ValueError):
    """A username or password does not meet the rules; ``field`` names which."""

    code = "invalid_operator"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class TooManyAttemptsError(OperatorError):
    """Too many failed logins for this username from this client; retry later."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownEdgeError(CorrespondanceError, LookupError):
    """An edge id that the city's drive network does not have."""

    code = "unknown_edge"


class UnknownIncidentError(CorrespondanceError, LookupError):
    """No incident in force has that id (it never existed, ended or expired)."""

    code = "unknown_incident"


# -- password checks -----------------------------------------------------------------------


def check_username(username: str) -> None:
    """Refuse a username that is not 3–32 characters of ``a-z 0-9 . _ -``.

    Raises
    ------
    InvalidOperatorError
        Naming the field ``username``.
    """
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidOperatorError(
            f"username {username[:40]!r} must be 3–32 characters of a-z, 0-9, '.', '_' or '-'",
            field="username",
        )


def check_password(password: str) -> None:
    """Refuse a password shorter than 12 or longer than 1024 characters.

    Raises
    ------
    InvalidOperatorError
        Naming the field ``password`` (never echoing it).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidOperatorError(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidOperatorError(
            f"password must be at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )


@functools.cache
def _default_hasher() -> PasswordHasher:
    # argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
    return PasswordHasher()


@functools.cache
def _decoy_hash(hasher: PasswordHasher) -> str:
    # Verified against when the username is unknown, so that a login takes as long for a
    # missing account as for a wrong password and does not reveal which usernames exist.
    return hasher.hash(secrets.token_urlsafe(32))


def _password_matches(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token_key(token: str) -> str:
    """Store key of a session: its token's SHA-256, never the token itself."""
    return f"operator:token:{_sha256(token)}"


def failed_logins_key(username: str, client: str) -> str:
    """Store key of the failed-login counter of one username from one client address.

    Hashed so that no client address sits in the store in clear.
    """
    return "operator:login-failures:" + _sha256(f"{username}\0{client}")


def account_attempts_key(username: str) -> str:
    """Store key of the counter of login attempts on one account from unknown addresses."""
    return "operator:login-account:" + _sha256(username)


def account_backoff_lock(username: str) -> str:
    """Lock name of an account's login backoff: held while the next attempt must wait."""
    return "operator-login-backoff:" + _sha256(username)


def known_address_key(username: str, client: str) -> str:
    """Store key marking an address the account logged in from (hashed with the username)."""
    return "operator:login-known:" + _sha256(f"{username}\0{client}")


@dataclass(frozen=True)
class OperatorSession:
    """A live session: who, and until when.

    Attributes
    ----------
    username : str
        The operator.
    expires_at : datetime
        When the token stops working (UTC).
    issued_at : datetime or None
        When it was issued (``None`` for tokens issued before this was recorded).
    """

    username: str
    expires_at: datetime
    issued_at: datetime | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued bearer token (the only time the token itself is seen).

    Attributes
    ----------
    token : str
        The bearer token.
    username : str
        Its operator.
    expires_in_s : int
        Seconds until it expires.
    """

    token: str
    username: str
    expires_in_s: int


class OperatorAccounts(ABC):
    """Operator accounts and their bearer-token sessions.

    Subclasses say where the accounts live (:meth:`find_password_hash`, :meth:`_insert`,
    :meth:`usernames`); sessions and failed-login counters always live in the state store.

    Parameters
    ----------
    store : StateStore
        Holds sessions and failed-login counters.
    hasher : PasswordHasher, optional
        argon2 parameters; the argon2-cffi defaults (argon2id) if omitted.
    """

    def __init__(self, store: StateStore, *, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or _default_hasher()

    # -- the account table ---------------------------------------------------------------

    @abstractmethod
    async def find_password_hash(self, username: str) -> str | None:
        """Return the argon2 hash of an account's password, or ``None`` if there is none.

        Parameters
        ----------
        username : str
            A well-formed username.

        Returns
        -------
        str or None
            The encoded argon2 hash.
        """

    @abstractmethod
    async def _insert(self, username: str, record: dict[str, str]) -> None:
        """Store a new account atomically; raise :class:`OperatorExistsError` if taken."""

    @abstractmethod
    async def _find_record(self, username: str) -> dict[str, str] | None:
        """The stored account record (``password_hash``, ``created_at``, ...), or ``None``."""

    @abstractmethod
    async def _replace(self, username: str, record: dict[str, str] | None) -> bool:
        """Overwrite an existing account's record, or delete it (``None``); ``False`` if
        there is no such account."""

    @abstractmethod
    async def usernames(self) -> list[str]:
        """Return every operator's username, sorted.

        Returns
        -------
        list of str
            Usernames.
        """

    # -- accounts ------------------------------------------------------------------------

    async def add(self, username: str, password: str) -> None:
        """Create an operator account.

        Parameters
        ----------
        username : str
            3–32 characters of ``a-z 0-9 . _ -``.
        password : str
            At least 12 characters; stored only as an argon2id hash.

        Raises
        ------
        InvalidOperatorError
            If the username or the password breaks the rules (``field`` says which).
        OperatorExistsError
            If the username is taken.
        """
        check_username(username)
        check_password(password)
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        await self._insert(
            username, {"password_hash": password_hash, "created_at": utc_now().isoformat()}
        )

    async def remove(self, username: str) -> bool:
        """Delete an operator account; its live tokens stop working at once.

        Parameters
        ----------
        username : str
            The operator.

        Returns
        -------
        bool
            ``True`` if there was such an account.
        """
        if not USERNAME_PATTERN.fullmatch(username):
            return False
        return await self._replace(username, None)

    async def reset_password(self, username: str, password: str) -> None:
        """Give an operator a new password; every token issued before stops working.

        Parameters
        ----------
        username : str
            An existing operator.
        password : str
            At least 12 characters; stored only as an argon2id hash.

        Raises
        ------
        InvalidOperatorError
            If the password breaks the rules, or there is no such operator.
        """
        check_password(password)
        record = await self._find_record(username) if USERNAME_PATTERN.fullmatch(username) else None
        if record is None:
            raise InvalidOperatorError(f"no operator named {username[:40]!r}", field="username")
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        changed = {
            **record,
            "password_hash": password_hash,
            "sessions_valid_after": utc_now().isoformat(),
        }
        if not await self._replace(username, changed):
            raise InvalidOperatorError(f"no operator named {username[:40]!r}", field="username")

    async def verify(self, username: str, password: str) -> bool:
        """Check a username and password in constant time.

        An unknown (or malformed) username is checked against a decoy hash, so it costs the
        same argon2 work as a wrong password.

        Parameters
        ----------
        username : str
            The claimed username.
        password : str
            The claimed password.

        Returns
        -------
        bool
            ``True`` only if the account exists and the password is its password.
        """
        stored = None
        if USERNAME_PATTERN.fullmatch(username):
            stored = await self.find_password_hash(username)
        too_long = len(password) > MAX_PASSWORD_LENGTH
        matches = await asyncio.to_thread(
            _password_matches,
            self.hasher,
            stored or _decoy_hash(self.hasher),
            "" if too_long else password,
        )
        return matches and stored is not None and not too_long

    async def login(
        self, username: str, password: str, client: str, ttl_s: float = DEFAULT_TOKEN_TTL_S
    ) -> IssuedToken:
        """Verify credentials and issue a token, refusing after too many failures.

        Every attempt counts against the username and client address for
        :data:`LOGIN_WINDOW_S` seconds (counted before verifying, so parallel guesses cannot
        slip past the limit); a success clears the count. Attempts from addresses the
        account never logged in from also count against the account: past
        :data:`ACCOUNT_FREE_ATTEMPTS` in :data:`ACCOUNT_WINDOW_S`, one attempt per backoff
        period (2 s doubling to 15 min) is let through. A successful login remembers its
        address for 30 days, and a remembered address skips the account backoff.

        Parameters
        ----------
        username, password : str
            The credentials.
        client : str
            The caller's address (only its hash, with the username, is stored).
        ttl_s : float, default 900
            Lifetime of the token.

        Returns
        -------
        IssuedToken
            The new token.

        Raises
        ------
        TooManyAttemptsError
            After :data:`MAX_FAILED_LOGINS` failures in the window, or inside the account's
            backoff, with the seconds left.
        InvalidCredentialsError
            If the credentials are wrong.
        """
        key = failed_logins_key(username, client)
        attempts = await self.store.incr(key, ttl_s=LOGIN_WINDOW_S)
        if attempts > MAX_FAILED_LOGINS:
            left = await self.store.ttl(key)
            raise TooManyAttemptsError(
                f"too many failed logins for {username[:40]!r}; try again later",
                retry_after_s=math.ceil(left if left is not None else LOGIN_WINDOW_S),
            )
        known = await self.store.get(known_address_key(username, client)) is not None
        if not known:
            await self._account_backoff(username)
        if not await self.verify(username, password):
            raise InvalidCredentialsError("wrong username or password")
        await self.store.set(known_address_key(username, client), b"1", ttl_s=KNOWN_ADDRESS_TTL_S)
        await self.store.delete(key)
        return IssuedToken(
            token=await self.issue_token(username, ttl_s),
            username=username,
            expires_in_s=math.ceil(ttl_s),
        )

    async def _account_backoff(self, username: str) -> None:
        """Count an attempt on the account from an unknown address; past the free ones,
        let one through per backoff period (an atomic lock, so parallel guesses cannot all
        pass) and refuse the others with the time left."""
        attempts = await self.store.incr(account_attempts_key(username), ttl_s=ACCOUNT_WINDOW_S)
        excess = attempts - ACCOUNT_FREE_ATTEMPTS
        if excess <= 0:
            return
        backoff = min(ACCOUNT_BACKOFF_MIN_S * 2 ** min(excess - 1, 20), ACCOUNT_BACKOFF_MAX_S)
        lock = account_backoff_lock(username)
        if await self.store.acquire_lock(lock, secrets.token_hex(8), backoff):
            return
        left = await self.store.ttl(f"lock:{lock}")
        raise TooManyAttemptsError(
            f"too many failed logins for {username[:40]!r} from new addresses; try again later"
            " (or from an address you logged in from before)",
            retry_after_s=math.ceil(left if left is not None and left > 0 else backoff),
        )

    # -- sessions ------------------------------------------------------------------------

    async def issue_token(self, username: str, ttl_s: float = DEFAULT_TOKEN_TTL_S) -> str:
        """Start a session for an existing operator.

        Parameters
        ----------
        username : str
            The operator (already authenticated by the caller).
        ttl_s : float, default 900
            Lifetime in seconds (at most a day).

        Returns
        -------
        str
            A URL-safe token of 256 random bits. Only its SHA-256 is stored.

        Raises
        ------
        InvalidOperatorError
            If there is no such operator or ``ttl_s`` is out of range.
        """
        if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
            raise InvalidOperatorError(
                f"ttl_s must be > 0 and ≤ {MAX_TOKEN_TTL_S:g} s, got {ttl_s!r}", field="ttl_s"
            )
        if not USERNAME_PATTERN.fullmatch(username) or (
            await self.find_password_hash(username) is None
        ):
            raise InvalidOperatorError(f"no operator named {username[:40]!r}", field="username")
        token = secrets.token_urlsafe(32)
        expires_at = utc_now() + timedelta(seconds=ttl_s)
        record = {
            "username": username,
            "issued": utc_now().isoformat(),
            "expires": expires_at.isoformat(),
        }
        await self.store.set(token_key(token), json.dumps(record).encode(), ttl_s=ttl_s)
        return token

    async def find_session(self, token: str) -> OperatorSession | None:
        """Return the live session of a token, or ``None`` if it is unknown or expired.

        Parameters
        ----------
        token : str
            A bearer token as presented.

        Returns
        -------
        OperatorSession or None
            The session.
        """
        if not _TOKEN_PATTERN.fullmatch(token):
            return None
        raw = await self.store.get(token_key(token))
        if raw is None:
            return None
        record = json.loads(raw)
        expires_at = datetime.fromisoformat(record["expires"])
        # The store's expiry is the rule; this guards against a backend rounding it up.
        if expires_at <= utc_now():
            return None
        issued = record.get("issued")
        return OperatorSession(
            username=record["username"],
            expires_at=expires_at,
            issued_at=datetime.fromisoformat(issued) if issued else None,
        )

    async def resolve(self, token: str) -> str | None:
        """Return the operator a token belongs to, or ``None`` if it is not valid now.

        Parameters
        ----------
        token : str
            A bearer token as presented.

        Returns
        -------
        str or None
            The username.
        """
        session = await self.find_session(token)
        if session is None:
            return None
        # a removed account, or a password reset after the token was issued, ends it
        account = await self._find_record(session.username)
        if account is None:
            return None
        valid_after = account.get("sessions_valid_after")
        if valid_after is not None and (
            session.issued_at is None or session.issued_at < datetime.fromisoformat(valid_after)
        ):
            return None
        return session.username

    async def revoke(self, token: str) -> bool:
        """End a session now.

        Parameters
        ----------
        token : str
            The bearer token.

        Returns
        -------
        bool
            ``True`` if it was a live session.
        """
        if not _TOKEN_PATTERN.fullmatch(token):
            return False
        return await self.store.delete(token_key(token)) > 0


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


# -- decisions -----------------------------------------------------------------------------


def incident_key(city: str, incident_id: str) -> str:
    """Store key of a declared incident or closure (JSON, expires with the incident)."""
    return f"ops:{city}:incident:{incident_id}"


def confirm_key(city: str, edge: int) -> str:
    """Store key of an operator's confirmation of congestion on a drive edge."""
    return f"ops:{city}:confirm:{edge}"


def dismiss_key(city: str, edge: int) -> str:
    """Store key of an operator's dismissal of congestion reports on a drive edge."""
    return f"ops:{city}:dismiss:{edge}"


@dataclass(frozen=True)
class Incident:
    """An incident or closure an operator declared; applies at once until it expires.

    Attributes
    ----------
    incident_id : str
        Random id.
    city : str
        City id.
    kind : {"closure", "incident"}
        A closure blocks the edges; an incident slows them (``level`` 1–4 if given).
    level : int or None
        Severity 1–4 for an incident; always ``None`` for a closure.
    note : str or None
        Free text for other operators.
    lat, lon : float
        Where it was declared.
    edges : tuple of int
        Drive edges it applies to: the nearest one and its opposite direction, if any.
    declared_by : str
        The operator.
    declared_at, expires_at : str
        ISO 8601 UTC.
    updated_by, updated_at : str or None
        The operator who last edited it, and when (``None`` if never edited).
    """

    incident_id: str
    city: str
    kind: IncidentKind
    level: int | None
    note: str | None
    lat: float
    lon: float
    edges: tuple[int, ...]
    declared_by: str
    declared_at: str
    expires_at: str
    updated_by: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class EdgeDecision:
    """An operator's confirmation or dismissal of congestion on one drive edge.

    Attributes
    ----------
    city : str
        City id.
    edge : int
        Drive edge id.
    decision : {"confirm", "dismiss"}
        What the operator decided.
    level : int or None
        Congestion level 1–4 the operator confirms (``None``: as reported).
    decided_by : str
        The operator.
    decided_at, expires_at : str
        ISO 8601 UTC.
    """

    city: str
    edge: int
    decision: Literal["confirm", "dismiss"]
    level: int | None
    decided_by: str
    decided_at: str
    expires_at: str


def check_edge(drive: StreetNetwork, edge: int) -> None:
    """Refuse an edge id the drive network does not have.

    Raises
    ------
    UnknownEdgeError
        If ``edge`` is not in ``0 .. n_edges - 1``.
    """
    if not 0 <= edge < drive.n_edges:
        raise UnknownEdgeError(
            f"unknown drive edge {edge}; this city's edges are 0..{drive.n_edges - 1}"
        )


def opposite_edges(drive: StreetNetwork, edge: int) -> list[int]:
    """Edges of the same OSM way running the other way along ``edge`` (two-way streets).

    Parameters
    ----------
    drive : StreetNetwork
        The drive network.
    edge : int
        An edge id.

    Returns
    -------
    list of int
        Zero or more edge ids.
    """
    tail, head = int(drive.tail[edge]), int(drive.head[edge])
    out = range(int(drive.indptr[head]), int(drive.indptr[head + 1]))
    return [
        e
        for e in out
        if int(drive.head[e]) == tail and drive.way_id[e] == drive.way_id[edge] and e != edge
    ]


def _check_level(level: int | None) -> None:
    if level is not None and not 1 <= level <= 4:
        raise InputError(f"'level' must be 1–4, got {level}", field="level")


def _check_ttl(expires_in_s: int) -> None:
    if not MIN_DECISION_TTL_S <= expires_in_s <= MAX_DECISION_TTL_S:
        raise InputError(
            f"'expires_in_s' must be {MIN_DECISION_TTL_S}–{MAX_DECISION_TTL_S}, got {expires_in_s}",
            field="expires_in_s",
        )


class OperatorDecisions:
    """Records operator decisions in the store, announces each one on the event stream and
    appends it to the city's audit log (:class:`crowdsource.audit.AuditLog`).

    Parameters
    ----------
    store : StateStore
        Where decisions are kept (keys in ``crowdsource/README.md``) and published.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def declare_incident(
        self,
        base: CityBase,
        *,
        operator: str,
        kind: IncidentKind,
        lat: float | None = None,
        lon: float | None = None,
        edges: list[int] | None = None,
        level: int | None = None,
        note: str | None = None,
        expires_in_s: int = DEFAULT_INCIDENT_TTL_S,
        max_snap_m: float = 500.0,
    ) -> Incident:
        """Declare an incident or closure at a point (the nearest drive edge) or on streets
        chosen on a map (``edges``); each edge takes its opposite direction along.

        Publishes ``incident.declared`` with the incident id, kind, level, edges and expiry.

        Parameters
        ----------
        base : CityBase
            The city.
        operator : str
            Who declares it.
        kind : {"closure", "incident"}
            What.
        lat, lon : float, optional
            Where (WGS84); needed unless ``edges`` is given.
        edges : list of int, optional
            Drive edge ids (1–200), e.g. streets selected on the dashboard's map.
        level : int, optional
            Severity 1–4 of an incident; not allowed for a closure (it is total).
        note : str, optional
            Up to 500 characters.
        expires_in_s : int, default 4 h
            Lifetime, 60 s to 7 days.
        max_snap_m : float, default 500
            How far the nearest drive street may be.

        Returns
        -------
        Incident
            What was stored.

        Raises
        ------
        InputError
            If ``kind``, ``level``, ``note``, ``expires_in_s`` is out of range, or neither
            (or both) of a point and ``edges`` is given.
        UnknownEdgeError
            If an edge id is not in the drive network.
        OutsideCityError
            If the point is outside the city.
        NoStreetNearbyError
            If no drive street is within ``max_snap_m``.
        """
        if kind not in INCIDENT_KINDS:
            raise InputError(f"'kind' must be one of {', '.join(INCIDENT_KINDS)}", field="kind")
        _check_incident(kind, level, note)
        _check_ttl(expires_in_s)
        city = base.city
        drive = base.streets["drive"]
        chosen = _incident_edges(base, lat, lon, edges, max_snap_m)
        if lat is None or lon is None:
            lon, lat = (float(v) for v in drive.edge_coords(chosen[0]).mean(axis=0))
        now = utc_now()
        incident = Incident(
            incident_id=secrets.token_hex(8),
            city=city.id,
            kind=kind,
            level=level,
            note=note,
            lat=lat,
            lon=lon,
            edges=chosen,
            declared_by=operator,
            declared_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=expires_in_s)).isoformat(),
        )
        await self._store_incident(incident, expires_in_s)
        await AuditLog(self.store, city.id).append(
            operator,
            "incident.declared",
            f"incident:{incident.incident_id}",
            _incident_details(incident),
        )
        return incident

    async def list_incidents(self, city: str, now: float | None = None) -> list[Incident]:
        """Every incident of a city in force, oldest first.

        Parameters
        ----------
        city : str
            City id.
        now : float, optional
            Unix seconds (default: the clock).

        Returns
        -------
        list of Incident
            Declared and not yet ended or expired.
        """
        now = utc_now().timestamp() if now is None else now
        found = []
        for key in await self.store.scan_keys(incident_key(city, "*")):
            raw = await self.store.get(key)
            if raw is None:
                continue
            incident = _decode_incident(raw)
            if datetime.fromisoformat(incident.expires_at).timestamp() > now:
                found.append(incident)
        return sorted(found, key=lambda i: (i.declared_at, i.incident_id))

    async def get_incident(self, city: str, incident_id: str) -> Incident:
        """One incident in force.

        Raises
        ------
        UnknownIncidentError
            If there is none with that id (never declared, ended or expired).
        """
        raw = None
        if _INCIDENT_ID.fullmatch(incident_id):
            raw = await self.store.get(incident_key(city, incident_id))
        if raw is None:
            raise UnknownIncidentError(
                f"no incident {incident_id[:40]!r} in force in {city} (ended or expired?)"
            )
        return _decode_incident(raw)

    async def update_incident(
        self,
        base: CityBase,
        incident_id: str,
        *,
        operator: str,
        changes: dict[str, Any],
        max_snap_m: float = 500.0,
    ) -> Incident:
        """Edit an incident in force: ``kind``, ``level``, ``note``, ``expires_in_s``
        (counted from now) or its ``edges``; what is not in ``changes`` stays.

        Re-publishes ``incident.declared`` (same id, the new edges and expiry) so fusion and
        the trip engine apply the new version, and audits ``incident.updated``.

        Raises
        ------
        UnknownIncidentError
            If no incident in force has that id.
        InputError
            If a change is out of range or names an unknown field.
        UnknownEdgeError
            If an edge id is not in the drive network.
        """
        unknown = sorted(set(changes) - {"kind", "level", "note", "expires_in_s", "edges"})
        if unknown:
            raise InputError(f"cannot change {', '.join(unknown)}", field=unknown[0])
        current = await self.get_incident(base.city.id, incident_id)
        kind = changes.get("kind", current.kind)
        if kind not in INCIDENT_KINDS:
            raise InputError(f"'kind' must be one of {', '.join(INCIDENT_KINDS)}", field="kind")
        level = changes.get("level", current.level)
        if kind == "closure" and "level" not in changes:
            level = None  # an incident turned into a closure drops its level
        note = changes.get("note", current.note)
        _check_incident(kind, level, note)
        now = utc_now()
        if "expires_in_s" in changes:
            expires_in_s = int(changes["expires_in_s"])
            _check_ttl(expires_in_s)
        else:
            left = datetime.fromisoformat(current.expires_at) - now
            expires_in_s = max(1, math.ceil(left.total_seconds()))
        edges, lat, lon = current.edges, current.lat, current.lon
        if changes.get("edges") is not None:
            edges = _incident_edges(base, None, None, list(changes["edges"]), max_snap_m)
            coords = base.streets["drive"].edge_coords(edges[0]).mean(axis=0)
            lon, lat = float(coords[0]), float(coords[1])
        incident = Incident(
            **{
                **asdict(current),
                "kind": kind,
                "level": level,
                "note": note,
                "edges": edges,
                "lat": lat,
                "lon": lon,
                "expires_at": (now + timedelta(seconds=expires_in_s)).isoformat(),
                "updated_by": operator,
                "updated_at": now.isoformat(),
            }
        )
        await self._store_incident(incident, expires_in_s)
        await AuditLog(self.store, base.city.id).append(
            operator,
            "incident.updated",
            f"incident:{incident_id}",
            {"changes": sorted(changes), **_incident_details(incident)},
        )
        return incident

    async def end_incident(self, city: str, incident_id: str, *, operator: str) -> Incident:
        """End an incident now (before it expires).

        Publishes ``incident.ended`` (``incident_id``, ``edges``) and audits it.

        Raises
        ------
        UnknownIncidentError
            If no incident in force has that id.
        """
        incident = await self.get_incident(city, incident_id)
        await self.store.delete(incident_key(city, incident_id))
        await self.store.publish(
            INCIDENT_ENDED,
            city,
            {"incident_id": incident_id, "edges": list(incident.edges), "ended_by": "operator"},
        )
        await AuditLog(self.store, city).append(
            operator, "incident.ended", f"incident:{incident_id}", _incident_details(incident)
        )
        return incident

    async def _store_incident(self, incident: Incident, expires_in_s: int) -> None:
        await self.store.set(
            incident_key(incident.city, incident.incident_id),
            _encode(asdict(incident)),
            ttl_s=expires_in_s,
        )
        await self.store.publish(
            INCIDENT_DECLARED,
            incident.city,
            {
                "incident_id": incident.incident_id,
                "kind": incident.kind,
                "level": incident.level,
                "edges": list(incident.edges),
                "expires_at": incident.expires_at,
            },
        )

    async def confirm_edge(
        self,
        base: CityBase,
        edge: int,
        *,
        operator: str,
        level: int | None = None,
        expires_in_s: int = DEFAULT_DECISION_TTL_S,
    ) -> EdgeDecision:
        """Confirm congestion on a drive edge (replacing any dismissal of it).

        Publishes ``congestion.confirmed`` with ``edges``, ``level`` and ``expires_at``.

        Parameters
        ----------
        base : CityBase
            The city.
        edge : int
            Drive edge id.
        operator : str
            Who confirms.
        level : int, optional
            Congestion level 1–4 (``None``: the level contributors report).
        expires_in_s : int, default 1 h
            Lifetime, 60 s to 7 days.

        Returns
        -------
        EdgeDecision
            What was stored.

        Raises
        ------
        UnknownEdgeError
            If the drive network has no such edge.
        InputError
            If ``level`` or ``expires_in_s`` is out of range.
        """
        return await self._decide(base, edge, "confirm", operator, level, expires_in_s)

    async def dismiss_edge(
        self,
        base: CityBase,
        edge: int,
        *,
        operator: str,
        expires_in_s: int = DEFAULT_DECISION_TTL_S,
    ) -> EdgeDecision:
        """Dismiss congestion reports on a drive edge (replacing any confirmation of it).

        Publishes ``congestion.dismissed`` with ``edges`` and ``expires_at``.

        Parameters
        ----------
        base : CityBase
            The city.
        edge : int
            Drive edge id.
        operator : str
            Who dismisses.
        expires_in_s : int, default 1 h
            Lifetime, 60 s to 7 days.

        Returns
        -------
        EdgeDecision
            What was stored.

        Raises
        ------
        UnknownEdgeError
            If the drive network has no such edge.
        InputError
            If ``expires_in_s`` is out of range.
        """
        return await self._decide(base, edge, "dismiss", operator, None, expires_in_s)

    async def _decide(
        self,
        base: CityBase,
        edge: int,
        decision: Literal["confirm", "dismiss"],
        operator: str,
        level: int | None,
        expires_in_s: int,
    ) -> EdgeDecision:
        check_edge(base.streets["drive"], edge)
        _check_level(level)
        _check_ttl(expires_in_s)
        city, now = base.city.id, utc_now()
        record = EdgeDecision(
            city=city,
            edge=edge,
            decision=decision,
            level=level,
            decided_by=operator,
            decided_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=expires_in_s)).isoformat(),
        )
        keep, drop = (
            (confirm_key, dismiss_key) if decision == "confirm" else (dismiss_key, confirm_key)
        )
        await self.store.set(keep(city, edge), _encode(asdict(record)), ttl_s=expires_in_s)
        await self.store.delete(drop(city, edge))
        payload: dict[str, Any] = {"edges": [edge], "expires_at": record.expires_at}
        if decision == "confirm":
            payload["level"] = level
        event = CONGESTION_CONFIRMED if decision == "confirm" else CONGESTION_DISMISSED
        await self.store.publish(event, city, payload)
        await AuditLog(self.store, city).append(
            operator,
            "edge.confirmed" if decision == "confirm" else "edge.dismissed",
            f"edge:{edge}",
            {"level": level, "expires_at": record.expires_at},
        )
        return record


_INCIDENT_ID = re.compile(r"^[0-9a-f]{16}$")


def _check_incident(kind: str, level: int | None, note: str | None) -> None:
    _check_level(level)
    if kind == "closure" and level is not None:
        raise InputError("'level' applies to incidents only: a closure is total", field="level")
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise InputError(f"'note' must be at most {MAX_NOTE_LENGTH} characters", field="note")


def _incident_edges(
    base: CityBase,
    lat: float | None,
    lon: float | None,
    edges: list[int] | None,
    max_snap_m: float,
) -> tuple[int, ...]:
    """The drive edges an incident applies to: chosen ones, or the nearest to a point;
    each with its opposite direction on the same way."""
    drive = base.streets["drive"]
    point = lat is not None and lon is not None
    if edges is not None and (lat is not None or lon is not None):
        raise InputError("give either a point (lat, lon) or 'edges', not both", field="edges")
    if edges is None:
        if not point:
            raise InputError("an incident needs a point (lat, lon) or 'edges'", field="lat")
        assert lat is not None and lon is not None
        city = base.city
        if not city.contains(lat, lon):
            raise OutsideCityError(
                f"{lat:.6f},{lon:.6f} is outside {city.name} "
                f"(bbox {', '.join(f'{v:g}' for v in city.bbox)})"
            )
        edges = [drive.snap(lat, lon, max_snap_m).edge]
    if not 1 <= len(edges) <= MAX_INCIDENT_EDGES:
        raise InputError(
            f"'edges' must list 1–{MAX_INCIDENT_EDGES} drive edges, got {len(edges)}",
            field="edges",
        )
    chosen: set[int] = set()
    for edge in edges:
        check_edge(drive, int(edge))
        chosen.update([int(edge), *opposite_edges(drive, int(edge))])
    return tuple(sorted(chosen))


def _incident_details(incident: Incident) -> dict[str, Any]:
    return {
        "kind": incident.kind,
        "level": incident.level,
        "note": incident.note,
        "edges": list(incident.edges),
        "expires_at": incident.expires_at,
    }


def _decode_incident(raw: bytes) -> Incident:
    record = json.loads(raw)
    record["edges"] = tuple(int(e) for e in record["edges"])
    return Incident(**record)


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()
