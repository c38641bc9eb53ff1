"""Page cursors of ``GET /api/v1/plan``: opaque to clients, validated on the way back.

A cursor is ``base64url(JSON).checksum``; the JSON names the direction (``depart`` or
``arrive``), the time, and a digest of the query it belongs to (city, from, to, modes).
It is not signed: it holds nothing a client could not ask for directly. It is validated:
a garbled cursor (bad encoding, checksum, JSON shape or version), one made for another
query, or one whose time falls outside the service window is ``400 invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from correspondance import bounds
from correspondance.errors import InputError

VERSION = 1


class InvalidCursorError(InputError):
    """A page cursor that this server did not make for this query (HTTP 400)."""

    code = "invalid_cursor"

    def __init__(self, why: str) -> None:
        super().__init__(f"'cursor' is not a page cursor of this query: {why}", field="cursor")


@dataclass(frozen=True)
class PageCursor:
    """Where a page starts: leave at ``at``, or with ``arrive_by`` arrive by it."""

    arrive_by: bool
    at: dt.datetime


def query_key(
    city: str, origin: tuple[float, float], destination: tuple[float, float], modes: frozenset[str]
) -> str:
    """A digest of what a cursor's query asks apart from its time."""
    text = "|".join(
        [
            city,
            f"{origin[0]:.6f},{origin[1]:.6f}",
            f"{destination[0]:.6f},{destination[1]:.6f}",
            ",".join(sorted(modes)),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def encode_cursor(cursor: PageCursor, key: str) -> str:
    """The opaque text of a cursor for the query with digest ``key``."""
    body = json.dumps(
        {
            "v": VERSION,
            "q": key,
            "m": "arrive" if cursor.arrive_by else "depart",
            "t": cursor.at.isoformat(),
        },
        separators=(",", ":"),
    )
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{payload}.{_checksum(payload)}"


def decode_cursor(
    text: str, key: str, tz: dt.tzinfo, window: tuple[dt.datetime, dt.datetime]
) -> PageCursor:
    """Read back a cursor made by :func:`encode_cursor` for the query with digest ``key``.

    Raises
    ------
    InvalidCursorError
        If the text is garbled, or was made for another query or version.
    correspondance.bounds.OutOfRangeError
        If its time lies outside ``window``.
    """
    payload, dot, check = text.partition(".")
    if not dot or not payload or _checksum(payload) != check:
        raise InvalidCursorError("garbled")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        data = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError("garbled") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"v", "q", "m", "t"}
        or data["v"] != VERSION
        or data["m"] not in ("arrive", "depart")
        or not isinstance(data["t"], str)
        or len(data["t"]) > 40
    ):
        raise InvalidCursorError("garbled")
    if data["q"] != key:
        raise InvalidCursorError("it belongs to another query (from, to, modes or city)")
    at = bounds.parse_datetime(data["t"], "cursor", tz, window)
    return PageCursor(arrive_by=data["m"] == "arrive", at=at)
