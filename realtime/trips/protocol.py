"""Messages of the live trip protocol, version 1 (``docs/protocol.md``).

Server messages are plain dicts built here, so every field name lives in one place; client
messages are checked against ``definitions/client_message`` of the published JSON Schema
(``realtime/trips/protocol.schema.json``, package data), the same document the tests
validate server messages with.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import fastjsonschema

from correspondance import bounds
from correspondance.errors import InputError

VERSION = 1
SCHEMA_RESOURCE = "protocol.schema.json"  # package data of realtime.trips (pyproject.toml)
MAX_CLIENT_MESSAGE = 4096  # bytes; positions and commands are tiny

# message types that carry ``seq`` and are replayed on resume
SEQUENCED = frozenset(
    {"live_update", "switch_suggestion", "suggestion_closed", "plan_updated", "trip_ended"}
)


class ProtocolError(InputError):
    """A client message the server refuses (answered with an ``error`` message)."""

    code = "invalid_message"


def load_schema() -> dict[str, Any]:
    """The published JSON Schema of the protocol, read as package data (so an installed
    wheel has it too)."""
    text = resources.files("realtime.trips").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _client_validator() -> Any:
    schema = load_schema()
    return fastjsonschema.compile(
        {"$ref": "#/definitions/client_message", "definitions": schema["definitions"]}
    )


def parse_client_message(text: str | bytes) -> dict[str, Any]:
    """A client frame → its message dict.

    Raises
    ------
    ProtocolError
        If the frame is too long, not JSON (``NaN`` and ``Infinity`` are not JSON), or not
        one of the client messages.
    """
    if len(text) > MAX_CLIENT_MESSAGE:
        raise ProtocolError(f"a client message has at most {MAX_CLIENT_MESSAGE} bytes")
    try:
        message = bounds.loads(text, "message")
    except (bounds.NonFiniteNumberError, bounds.JsonTooDeepError) as exc:
        # Python's json reads NaN and Infinity; stored, they would make every later
        # frame invalid JSON for the client
        raise ProtocolError(f"a client message must be plain JSON: {exc.message}") from None
    except ValueError:
        raise ProtocolError("a client message must be one JSON object") from None
    if not isinstance(message, dict):
        raise ProtocolError("a client message must be one JSON object")
    try:
        _client_validator()(message)
    except fastjsonschema.JsonSchemaException as exc:
        kind = message.get("type")
        if kind not in ("auth", "position", "accept", "decline", "end", "ping"):
            raise ProtocolError(
                f"unknown message type {kind!r}", code="unknown_type", field="type"
            ) from None
        raise ProtocolError(f"bad {kind!r} message: {exc}", field=kind) from None
    return message


def stamp(at: dt.datetime) -> str:
    """A time as the protocol writes it: ISO 8601 with offset, whole seconds."""
    return at.replace(microsecond=0).isoformat()


def message(kind: str, trip_id: str, sent_at: dt.datetime, **fields: Any) -> dict[str, Any]:
    """A server message with its envelope (``seq`` is added when it is stored)."""
    return {"v": VERSION, "type": kind, "trip_id": trip_id, "sent_at": stamp(sent_at), **fields}


def error(trip_id: str, sent_at: dt.datetime, code: str, text: str) -> dict[str, Any]:
    """An ``error`` message; the connection stays open."""
    return message("error", trip_id, sent_at, code=code, message=text)
