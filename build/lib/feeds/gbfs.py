"""GBFS 2.2, 2.3 and 3.0 feeds → typed records. Pure: bytes, str or dicts in, models out.

Every document is checked against the official MobilityData JSON Schema for its declared
``version`` (packaged in ``feeds/schemas/gbfs/``, never fetched) in two steps:

1. the *envelope* (``last_updated``, ``ttl``, ``version``, ``data`` and everything in it except
   the record list) must be valid, or the whole document is refused with :class:`FeedError`
   naming the feed and its first problems;
2. each *record* (a station, a vehicle, a vehicle type, a geofencing feature) is validated
   alone against the schema's item subschema; invalid records are dropped and counted in
   :attr:`Parsed.rejected` / :attr:`Parsed.reasons`. One bad station must not take a city's
   bike-share offline.

Then the rules a schema cannot express: a ``last_updated`` more than five minutes ahead of
``now`` is refused (``code="feed_from_future"``); one older than ``max(3 × ttl, 1 h)`` marks the
result :attr:`~Parsed.stale` (a flag for the writer, not an error).

One leniency, reported in :attr:`Parsed.notes`: integer ``0``/``1`` where the schema wants a
boolean is read as the boolean. GBFS 1.x used integers there and real 2.x feeds (Oslo Bysykkel)
still publish them; the meaning is unambiguous. Any other integer is still a rejection.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import fastjsonschema
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for
from referencing import Registry

from feeds.errors import FeedError

SUPPORTED_VERSIONS: Final = ("2.2", "2.3", "3.0")
FUTURE_TOLERANCE_S: Final = 300
"""A document may claim to be this far ahead of ``now`` (clock skew) before it is refused."""
MIN_STALE_AFTER_S: Final = 3600
"""A document is stale after ``max(3 × ttl, MIN_STALE_AFTER_S)`` seconds."""
MAX_REASONS: Final = 10
"""How many rejection reasons a result keeps (the count is always complete)."""


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class StationInfo:
    """A station's fixed facts (station_information)."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int | None
    is_virtual_station: bool = False


@dataclass(frozen=True)
class VehicleTypeCount:
    """How many vehicles of one type a station holds (``vehicle_types_available``)."""

    vehicle_type_id: str
    count: int


@dataclass(frozen=True)
class StationStatus:
    """A station's live availability (station_status).

    ``num_vehicles_available`` is ``num_bikes_available`` in 2.x. ``num_docks_available`` is
    ``None`` when the feed omits it, which the spec allows for stations with unlimited docking
    (virtual stations): it does *not* mean zero docks.
    """

    station_id: str
    num_vehicles_available: int
    num_docks_available: int | None
    is_renting: bool
    is_returning: bool
    is_installed: bool
    last_reported: int | None
    vehicle_types_available: tuple[VehicleTypeCount, ...] = ()


@dataclass(frozen=True)
class Vehicle:
    """A vehicle from free_bike_status (2.x, ``bike_id``) or vehicle_status (3.0, ``vehicle_id``).

    A free-floating vehicle has ``lat``/``lon``; a vehicle docked at a station may have only
    ``station_id`` (the schema allows either, never neither).
    """

    vehicle_id: str
    lat: float | None
    lon: float | None
    is_reserved: bool
    is_disabled: bool
    vehicle_type_id: str | None
    station_id: str | None
    current_range_meters: float | None
    last_reported: int | None

    @property
    def is_free_floating(self) -> bool:
        """True when the vehicle has its own position (it is not only "at station X")."""
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class VehicleType:
    """A vehicle type (vehicle_types): what routing calls the form factor.

    ``form_factor`` is the spec's word: ``bicycle``, ``cargo_bicycle``, ``car``, ``moped``,
    ``scooter`` (2.x only), ``scooter_standing``, ``scooter_seated`` or ``other``.
    ``propulsion_type``: ``human``, ``electric_assist``, ``electric``, ``combustion``, ...
    """

    vehicle_type_id: str
    form_factor: str
    propulsion_type: str
    name: str | None
    max_range_meters: float | None


Ring = tuple[tuple[float, float], ...]
"""A closed ring of ``(lon, lat)`` positions, GeoJSON order."""


@dataclass(frozen=True)
class GeofencingZone:
    """One rule of one geofencing feature, applied to that feature's polygons.

    A feature with *n* rules gives *n* zones (GBFS rules are per vehicle type; the first rule
    matching a vehicle type wins, so zones keep feature then rule order). A feature without
    rules restricts nothing and gives no zone. 3.0 ``global_rules`` are zones with
    ``is_global=True`` and no polygons: they apply everywhere no zone overrides them.

    ``polygons``: each polygon is its rings, the exterior first, then holes.
    ``vehicle_type_ids`` empty means every vehicle type.
    2.x ``ride_allowed`` sets both ``ride_start_allowed`` and ``ride_end_allowed``.
    """

    name: str | None
    polygons: tuple[tuple[Ring, ...], ...]
    vehicle_type_ids: tuple[str, ...]
    ride_start_allowed: bool
    ride_end_allowed: bool
    ride_through_allowed: bool
    station_parking: bool | None
    maximum_speed_kph: int | None
    start: int | None
    end: int | None
    is_global: bool = False

    @property
    def ride_allowed(self) -> bool:
        """2.x meaning: a ride may start *and* end here."""
        return self.ride_start_allowed and self.ride_end_allowed


T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """The valid records of one document, how many were rejected and why.

    ``reasons`` keeps the first few (:data:`MAX_REASONS`); ``rejected`` counts them all.
    ``last_updated`` is POSIX seconds whatever the version (3.0's RFC 3339 is converted).
    ``stale`` is only computed when the parser was given ``now``. ``notes`` lists what was
    accepted with a leniency (see the module docstring).
    """

    records: tuple[T, ...]
    last_updated: int
    ttl: int
    version: str
    rejected: int
    reasons: tuple[str, ...]
    stale: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Discovery:
    """The auto-discovery file (gbfs.json): which feeds exist and where.

    ``feeds`` maps the spec's feed name (``station_status``, ``free_bike_status``, ...) to its
    URL, for the chosen ``language`` (2.x) — 3.0 has one list and ``language`` is ``None``.
    """

    version: str
    feeds: Mapping[str, str]
    ttl: int
    last_updated: int
    language: str | None
    stale: bool = False


@dataclass(frozen=True)
class SystemInformation:
    """The system (system_information): its id, public name and time zone."""

    system_id: str
    name: str
    timezone: str
    version: str
    ttl: int
    last_updated: int
    stale: bool = False


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


def _posix(value: Any) -> int:
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


def _text(value: Any) -> str | None:
    """3.0 localised strings are ``[{text, language}, ...]``: take the first; 2.x plain."""
    if isinstance(value, list):
        return str(value[0]["text"]) if value else None
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class _Envelope:
    doc: dict[str, Any]
    feed: str
    version: str
    last_updated: int
    ttl: int
    stale: bool


def _envelope(raw: bytes | str | Mapping[str, Any], feed: str, now: float | None) -> _Envelope:
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
        last_updated = _posix(doc["last_updated"])
    except ValueError as exc:
        raise FeedError(f"{name}: unreadable last_updated ({exc})") from exc
    ttl = int(doc["ttl"])
    stale = _freshness(name, last_updated, ttl, now)
    return _Envelope(doc, feed, version, last_updated, ttl, stale)


def _records(
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


def _ident(key: str) -> Callable[[Any, int], str]:
    def ident(item: Any, index: int) -> str:
        value = item.get(key) if isinstance(item, dict) else None
        return f"{key} {value}" if value is not None else f"record #{index}"

    return ident


# ---------------------------------------------------------------------------- builders


def _station_info(item: dict[str, Any], version: str) -> StationInfo:
    capacity = item.get("capacity")
    return StationInfo(
        station_id=item["station_id"],
        name=_text(item["name"]) or "",
        lat=float(item["lat"]),
        lon=float(item["lon"]),
        capacity=None if capacity is None else int(capacity),
        is_virtual_station=bool(item.get("is_virtual_station", False)),
    )


def _station_status(item: dict[str, Any], version: str) -> StationStatus:
    count_key = "num_vehicles_available" if version.startswith("3") else "num_bikes_available"
    last_reported = item.get("last_reported")
    return StationStatus(
        station_id=item["station_id"],
        num_vehicles_available=int(item[count_key]),
        num_docks_available=item.get("num_docks_available"),
        is_renting=item["is_renting"],
        is_returning=item["is_returning"],
        is_installed=item["is_installed"],
        last_reported=None if last_reported is None else _posix(last_reported),
        vehicle_types_available=tuple(
            VehicleTypeCount(v["vehicle_type_id"], int(v["count"]))
            for v in item.get("vehicle_types_available", ())
        ),
    )


def _vehicle(item: dict[str, Any], version: str) -> Vehicle:
    last_reported = item.get("last_reported")
    return Vehicle(
        vehicle_id=item["vehicle_id" if version.startswith("3") else "bike_id"],
        lat=_number(item.get("lat")),
        lon=_number(item.get("lon")),
        is_reserved=item["is_reserved"],
        is_disabled=item["is_disabled"],
        vehicle_type_id=item.get("vehicle_type_id"),
        station_id=item.get("station_id"),
        current_range_meters=_number(item.get("current_range_meters")),
        last_reported=None if last_reported is None else _posix(last_reported),
    )


def _vehicle_type(item: dict[str, Any], version: str) -> VehicleType:
    return VehicleType(
        vehicle_type_id=item["vehicle_type_id"],
        form_factor=item["form_factor"],
        propulsion_type=item["propulsion_type"],
        name=_text(item.get("name")),
        max_range_meters=_number(item.get("max_range_meters")),
    )


def _zone(
    rule: dict[str, Any],
    version: str,
    *,
    name: str | None = None,
    polygons: tuple[tuple[Ring, ...], ...] = (),
    start: int | None = None,
    end: int | None = None,
) -> GeofencingZone:
    if version.startswith("3"):
        ride_start, ride_end = rule["ride_start_allowed"], rule["ride_end_allowed"]
        type_ids = rule.get("vehicle_type_ids", ())
    else:
        ride_start = ride_end = rule["ride_allowed"]
        type_ids = rule.get("vehicle_type_id", ())
    return GeofencingZone(
        name=name,
        polygons=polygons,
        vehicle_type_ids=tuple(type_ids),
        ride_start_allowed=ride_start,
        ride_end_allowed=ride_end,
        ride_through_allowed=rule["ride_through_allowed"],
        station_parking=rule.get("station_parking"),
        maximum_speed_kph=rule.get("maximum_speed_kph"),
        start=start,
        end=end,
        is_global=not polygons,
    )


def _zones(feature: dict[str, Any], version: str) -> tuple[GeofencingZone, ...]:
    props = feature["properties"]
    polygons = tuple(
        tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in polygon)
        for polygon in feature["geometry"]["coordinates"]
    )
    for polygon in polygons:
        for ring in polygon:
            if ring[0] != ring[-1]:
                raise ValueError("a polygon ring is not closed (first position != last)")
    if not polygons:
        raise ValueError("a MultiPolygon without polygons")
    start, end = props.get("start"), props.get("end")
    return tuple(
        _zone(
            rule,
            version,
            name=_text(props.get("name")),
            polygons=polygons,
            start=None if start is None else _posix(start),
            end=None if end is None else _posix(end),
        )
        for rule in props.get("rules", ())
    )


# ---------------------------------------------------------------------------- public


def parse_discovery(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None, language: str | None = None
) -> Discovery:
    """Parse the auto-discovery file, gbfs.json.

    Parameters
    ----------
    raw
        The document: bytes or text as served, or an already decoded dict.
    now
        POSIX seconds to judge freshness against; ``None`` skips the freshness rules.
    language
        2.x only: which language's feed list to read; default the first one listed.

    Returns
    -------
    Discovery

    Raises
    ------
    FeedError
        Not JSON, an unsupported version, a document the schema refuses (the whole feed
        list is the document, so nothing is dropped), an unknown ``language``, or a
        ``last_updated`` from the future (``code="feed_from_future"``).
    """
    env = _envelope(raw, "gbfs", now)
    data = env.doc["data"]
    if env.version.startswith("3"):
        lang, entries = None, data["feeds"]
    else:
        lang = language or next(iter(data))
        if lang not in data:
            raise FeedError(f"gbfs: no feed list for language {lang!r} (has {', '.join(data)})")
        entries = data[lang]["feeds"]
    return Discovery(
        version=env.version,
        feeds={e["name"]: e["url"] for e in entries},
        ttl=env.ttl,
        last_updated=env.last_updated,
        language=lang,
        stale=env.stale,
    )


def parse_system_information(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> SystemInformation:
    """Parse system_information.json.

    Returns
    -------
    SystemInformation
        ``name`` is the first translation in 3.0.

    Raises
    ------
    FeedError
        As :func:`parse_discovery`: the document is one record, so an invalid one is refused.
    """
    env = _envelope(raw, "system_information", now)
    data = env.doc["data"]
    return SystemInformation(
        system_id=data["system_id"],
        name=_text(data["name"]) or "",
        timezone=data["timezone"],
        version=env.version,
        ttl=env.ttl,
        last_updated=env.last_updated,
        stale=env.stale,
    )


def parse_station_information(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[StationInfo]:
    """Parse station_information.json (names: plain in 2.x, first translation in 3.0).

    Returns
    -------
    Parsed[StationInfo]
        Valid stations; invalid ones dropped and counted. Zero stations is a valid result.

    Raises
    ------
    FeedError
        Not JSON, an unsupported version, an invalid envelope, or a ``last_updated`` from
        the future (``code="feed_from_future"``).
    """
    return _records(_envelope(raw, "station_information", now), _station_info, _ident("station_id"))


def parse_station_status(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[StationStatus]:
    """Parse station_status.json (``num_bikes_available`` in 2.x, ``num_vehicles_*`` in 3.0).

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    return _records(_envelope(raw, "station_status", now), _station_status, _ident("station_id"))


def parse_vehicle_status(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[Vehicle]:
    """Parse free_bike_status.json (2.x) or vehicle_status.json (3.0): either works.

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    env = _envelope(raw, "vehicle_status", now)
    key = "vehicle_id" if env.version.startswith("3") else "bike_id"
    return _records(env, _vehicle, _ident(key))


parse_free_bike_status = parse_vehicle_status
"""The 2.x name of :func:`parse_vehicle_status`."""


def parse_vehicle_types(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[VehicleType]:
    """Parse vehicle_types.json.

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    return _records(_envelope(raw, "vehicle_types", now), _vehicle_type, _ident("vehicle_type_id"))


def parse_geofencing_zones(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[GeofencingZone]:
    """Parse geofencing_zones.json into one :class:`GeofencingZone` per (feature, rule).

    A feature is the record: an invalid one (schema, or a ring that is not closed) is dropped
    with all its rules and counted once. 3.0 ``global_rules`` come first, as zones with
    ``is_global=True``.

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    env = _envelope(raw, "geofencing_zones", now)
    per_feature = _records(env, _zones, _ident("id"))
    global_rules = env.doc["data"].get("global_rules", ()) if env.version.startswith("3") else ()
    zones = tuple(_zone(r, per_feature.version) for r in global_rules) + tuple(
        zone for feature in per_feature.records for zone in feature
    )
    return Parsed(
        zones,
        per_feature.last_updated,
        per_feature.ttl,
        per_feature.version,
        per_feature.rejected,
        per_feature.reasons,
        per_feature.stale,
        per_feature.notes,
    )
