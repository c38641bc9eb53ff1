"""GBFS documents against the official MobilityData JSON Schemas: the envelope checked
whole, each record alone, and the freshness rules a schema cannot express (see
:mod:`feeds.gbfs`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import fastjsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for
from referencing import Registry

from feeds.errors import FeedError
from feeds.gbfs_models import Parsed, T

SUPPORTED_VERSIONS: Final = ("2.2", "2.3", "3.0")
FUTURE_TOLERANCE_S: Final = 300
"""A document may claim to be this far ahead of ``now`` (clock skew) before it is refused."""
MIN_STALE_AFTER_S: Final = 3600
"""A document is stale after ``max(3 × ttl, MIN_STALE_AFTER_S)`` seconds."""
MAX_REASONS: Final = 10
"""How many rejection reasons a result keeps (the count is always complete)."""


# ---------------------------------------------------------------------------- schemas

_SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas" / "gbfs"


# Where each feed keeps its records inside ``data`` (None: the document has no record list).
_RECORDS: Final[dict[str, tuple[str, ...] | None]] = {
    "gbfs": None,
    "system_information": None,
    "station_information": ("stations",),
    "station_status": ("stations",),
    "free_bike_status": ("bikes",),
    "vehicle_status": ("vehicles",),
    "vehicle_types": ("vehicle_types",),
    "geofencing_zones": ("geofencing_zones", "features"),
}


@cache
def _schema(version: str, feed: str) -> dict[str, Any]:
    # Next to this module, not files("feeds"): a ``tests/feeds`` directory earlier on
    # sys.path (pytest puts ``tests/`` there) makes "feeds" a namespace package there.
    path = _SCHEMA_DIR / f"v{version}" / f"{feed}.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    # The official schemas declare draft 7; refuse silently switching dialects on an update.
    if validator_for(schema, default=Draft7Validator) is not Draft7Validator:
        raise FeedError(f"schema {version}/{feed} does not declare JSON Schema draft 7")
    return schema


def _validator(schema: dict[str, Any]) -> Draft7Validator:
    # An empty registry: a "$ref" to anything outside the schema fails instead of being
    # fetched over the network (the official schemas have none today).
    return Draft7Validator(schema, registry=Registry())


@cache
def _validators(version: str, feed: str) -> tuple[Draft7Validator, Draft7Validator | None]:
    """(envelope validator, record validator) for one feed of one version, compiled once."""
    schema = _schema(version, feed)
    path = _RECORDS[feed]
    if path is None:
        return _validator(schema), None
    envelope = copy.deepcopy(schema)
    node = envelope["properties"]["data"]
    for key in path:
        node = node["properties"][key]
    item_schema = node["items"]
    node["items"] = {}  # records are checked one by one, not as part of the envelope
    return _validator(envelope), _validator(item_schema)


@cache
def _fast_check(version: str, feed: str) -> Callable[[Any], bool]:
    """A compiled yes/no record check (fastjsonschema generates Python code for the schema,
    ~20× faster than interpreting it); jsonschema still explains the records it refuses."""
    _, item_validator = _validators(version, feed)
    assert item_validator is not None
    compiled = fastjsonschema.compile(dict(item_validator.schema), use_formats=False)  # type: ignore[arg-type]

    def check(item: Any) -> bool:
        try:
            compiled(item)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return check


def _describe(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    if len(error.message) <= 160:
        return f"{where}: {error.message}" if where else error.message
    # Messages quoting a whole list are unreadable: name the failed keyword instead.
    rule = json.dumps(error.validator_value)
    return f"{where or 'document'}: fails {error.validator!r} {rule[:120]}"


# ---------------------------------------------------------------------------- helpers


def _document(raw: bytes | str | Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        doc: Any = dict(raw)
    else:
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FeedError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise FeedError(f"{what}: not a GBFS document (no 'data' object)")
    return doc


def _version(doc: dict[str, Any], what: str) -> str:
    version = doc.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise FeedError(
            f"{what}: GBFS version {version!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})",
            code="unsupported_gbfs_version",
        )
    return str(version)


def as_posix(value: Any) -> int:
    """POSIX seconds from a 2.x integer or a 3.0 RFC 3339 string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    return int(moment.timestamp())


def _freshness(what: str, last_updated: int, ttl: int, now: float | None) -> bool:
    """Raise if the document claims to come from the future; return whether it is stale."""
    if now is None:
        return False
    ahead = last_updated - now
    if ahead > FUTURE_TOLERANCE_S:
        raise FeedError(
            f"{what}: last_updated is {ahead:.0f} s after now "
            f"(more than {FUTURE_TOLERANCE_S} s: a wrong clock or a broken feed)",
            code="feed_from_future",
        )
    return now - last_updated > max(3 * ttl, MIN_STALE_AFTER_S)


def _boolean_fields(schema: Mapping[str, Any]) -> frozenset[str]:
    props = schema.get("properties", {})
    return frozenset(
        k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "boolean"
    )


def _coerce_booleans(item: Any, fields: frozenset[str]) -> tuple[Any, bool]:
    """Read 0/1 as false/true in boolean fields (see the module docstring)."""
    if not isinstance(item, dict):
        return item, False
    hits = {k: bool(item[k]) for k in fields if type(item.get(k)) is int and item[k] in (0, 1)}
    return ({**item, **hits}, True) if hits else (item, False)


def as_text(value: Any) -> str | None:
    """3.0 localised strings are ``[{text, language}, ...]``: take the first; 2.x plain."""
    if isinstance(value, list):
        return str(value[0]["text"]) if value else None
    return None if value is None else str(value)


def as_number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class _Envelope:
    doc: dict[str, Any]
    feed: str
    version: str
    last_updated: int
    ttl: int
    stale: bool


def read_envelope(raw: bytes | str | Mapping[str, Any], feed: str, now: float | None) -> _Envelope:
    name = feed
    doc = _document(raw, name)
    version = _version(doc, name)
    # One parser reads both names of the vehicle feed; each version has its own schema.
    if feed in ("free_bike_status", "vehicle_status"):
        feed = "vehicle_status" if version.startswith("3") else "free_bike_status"
    envelope_validator, _ = _validators(version, feed)
    errors = sorted(envelope_validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(_describe(e) for e in errors[:3])
        raise FeedError(
            f"{name} (GBFS {version}): invalid document, {len(errors)} problem(s): {shown}",
            code="invalid_gbfs_document",
        )
    try:
        last_updated = as_posix(doc["last_updated"])
    except ValueError as exc:
        raise FeedError(f"{name}: unreadable last_updated ({exc})") from exc
    ttl = int(doc["ttl"])
    stale = _freshness(name, last_updated, ttl, now)
    return _Envelope(doc, feed, version, last_updated, ttl, stale)


def parse_records(
    env: _Envelope,
    build: Callable[[dict[str, Any], str], T],
    ident: Callable[[Any, int], str],
) -> Parsed[T]:
    path = _RECORDS[env.feed]
    _, item_validator = _validators(env.version, env.feed)
    assert path is not None and item_validator is not None, env.feed
    items: Any = env.doc["data"]
    for key in path:
        items = items[key]
    item_schema = item_validator.schema
    fast_check = _fast_check(env.version, env.feed)
    booleans = _boolean_fields(item_schema) if isinstance(item_schema, Mapping) else frozenset()
    out: list[T] = []
    reasons: list[str] = []
    rejected = coerced = 0
    for index, original in enumerate(items):
        item, was_coerced = _coerce_booleans(original, booleans)
        # the compiled yes/no check first; the full (sorted) error list only for bad records
        error = (
            None
            if fast_check(item)
            else next(iter(sorted(item_validator.iter_errors(item), key=str)), None)
        )
        if error is None:
            try:
                out.append(build(item, env.version))
                coerced += was_coerced
                continue
            except (KeyError, TypeError, ValueError) as exc:  # rules beyond the schema
                problem = str(exc)
        else:
            problem = _describe(error)
        rejected += 1
        if len(reasons) < MAX_REASONS:
            reasons.append(f"{ident(original, index)}: {problem}")
    notes = (
        (f"{coerced} record(s) used 0/1 for boolean fields (GBFS 1.x style); read as booleans",)
        if coerced
        else ()
    )
    return Parsed(
        tuple(out),
        env.last_updated,
        env.ttl,
        env.version,
        rejected,
        tuple(reasons),
        env.stale,
        notes,
    )


def record_ident(key: str) -> Callable[[Any, int], str]:
    def ident(item: Any, index: int) -> str:
        value = item.get(key) if isinstance(item, dict) else None
        return f"{key} {value}" if value is not None else f"record #{index}"

    return ident
