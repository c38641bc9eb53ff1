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

from collections.abc import Mapping
from typing import Any

from feeds.errors import FeedError
from feeds.gbfs_models import (
    Discovery,
    GeofencingZone,
    Parsed,
    Ring,
    StationInfo,
    StationStatus,
    SystemInformation,
    Vehicle,
    VehicleType,
    VehicleTypeCount,
)
from feeds.gbfs_schema import (
    SUPPORTED_VERSIONS,
    as_number,
    as_posix,
    as_text,
    parse_records,
    read_envelope,
    record_ident,
)

__all__ = [
    "SUPPORTED_VERSIONS",
    "Discovery",
    "GeofencingZone",
    "Parsed",
    "Ring",
    "StationInfo",
    "StationStatus",
    "SystemInformation",
    "Vehicle",
    "VehicleType",
    "VehicleTypeCount",
    "parse_discovery",
    "parse_free_bike_status",
    "parse_geofencing_zones",
    "parse_station_information",
    "parse_station_status",
    "parse_system_information",
    "parse_vehicle_status",
    "parse_vehicle_types",
]

# ---------------------------------------------------------------------------- builders


def _station_info(item: dict[str, Any], version: str) -> StationInfo:
    capacity = item.get("capacity")
    return StationInfo(
        station_id=item["station_id"],
        name=as_text(item["name"]) or "",
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
        last_reported=None if last_reported is None else as_posix(last_reported),
        vehicle_types_available=tuple(
            VehicleTypeCount(v["vehicle_type_id"], int(v["count"]))
            for v in item.get("vehicle_types_available", ())
        ),
    )


def _vehicle(item: dict[str, Any], version: str) -> Vehicle:
    last_reported = item.get("last_reported")
    return Vehicle(
        vehicle_id=item["vehicle_id" if version.startswith("3") else "bike_id"],
        lat=as_number(item.get("lat")),
        lon=as_number(item.get("lon")),
        is_reserved=item["is_reserved"],
        is_disabled=item["is_disabled"],
        vehicle_type_id=item.get("vehicle_type_id"),
        station_id=item.get("station_id"),
        current_range_meters=as_number(item.get("current_range_meters")),
        last_reported=None if last_reported is None else as_posix(last_reported),
    )


def _vehicle_type(item: dict[str, Any], version: str) -> VehicleType:
    return VehicleType(
        vehicle_type_id=item["vehicle_type_id"],
        form_factor=item["form_factor"],
        propulsion_type=item["propulsion_type"],
        name=as_text(item.get("name")),
        max_range_meters=as_number(item.get("max_range_meters")),
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
            name=as_text(props.get("name")),
            polygons=polygons,
            start=None if start is None else as_posix(start),
            end=None if end is None else as_posix(end),
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
    env = read_envelope(raw, "gbfs", now)
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
    env = read_envelope(raw, "system_information", now)
    data = env.doc["data"]
    return SystemInformation(
        system_id=data["system_id"],
        name=as_text(data["name"]) or "",
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
    return parse_records(
        read_envelope(raw, "station_information", now), _station_info, record_ident("station_id")
    )


def parse_station_status(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[StationStatus]:
    """Parse station_status.json (``num_bikes_available`` in 2.x, ``num_vehicles_*`` in 3.0).

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    return parse_records(
        read_envelope(raw, "station_status", now), _station_status, record_ident("station_id")
    )


def parse_vehicle_status(
    raw: bytes | str | Mapping[str, Any], *, now: float | None = None
) -> Parsed[Vehicle]:
    """Parse free_bike_status.json (2.x) or vehicle_status.json (3.0): either works.

    Raises
    ------
    FeedError
        As :func:`parse_station_information`.
    """
    env = read_envelope(raw, "vehicle_status", now)
    key = "vehicle_id" if env.version.startswith("3") else "bike_id"
    return parse_records(env, _vehicle, record_ident(key))


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
    return parse_records(
        read_envelope(raw, "vehicle_types", now), _vehicle_type, record_ident("vehicle_type_id")
    )


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
    env = read_envelope(raw, "geofencing_zones", now)
    per_feature = parse_records(env, _zones, record_ident("id"))
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
