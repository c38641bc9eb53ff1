"""Operator accounts and their short-lived sessions (bearer tokens), with the login lockout.

No HTTP here: ``api/auth.py`` and ``api/routes/operators.py`` are thin adapters over it.

Accounts
    Created only from the command line (``correspondance operator add``); there are no
    default accounts. Passwords are kept as argon2id hashes, never in clear. Two account
    tables share one interface (:class:`OperatorAccounts`, here): the store-backed and the
    file-backed tables of :mod:`crowdsource.account_tables`, of which
    :func:`~crowdsource.account_tables.open_operator_accounts` picks the one that matches a
    store.

Sessions
    A bearer token is 256 random bits shown once to the operator; the store keeps only its
    SHA-256 (``operator:token:<sha256 hex>`` → username and expiry) with a TTL, so a leaked
    store dump holds no usable token, and a token dies on its own after ``ttl_s``.

Lockout
    Failed logins are counted per (username, client address) and per account, with a backoff
    that an address the operator logged in from before skips.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from correspondance.errors import CorrespondanceError
from correspondance.store import StateStore
from correspondance.store.events import utc_now

if TYPE_CHECKING:  # the CLI manages accounts without loading the routing stack
    pass

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
        """Return the operator a token belongs to (the username of :meth:`find_session`), or
        ``None`` if it is not valid now."""
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
