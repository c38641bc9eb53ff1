"""GBFS (2.x and 3.0) station feeds → typed records. Pure: dicts or bytes in, models out.

Only what routing needs today: station_information and station_status joined into
stations with availability. Records that are malformed are dropped and counted, never
raised: one bad station must not take a city's bike-share offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from feeds.errors import FeedError


@dataclass(frozen=True)
class StationInfo:
    """A station's fixed facts (station_information)."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int | None


@dataclass(frozen=True)
class StationStatus:
    """A station's live availability (station_status)."""

    station_id: str
    num_vehicles_available: int
    num_docks_available: int
    is_renting: bool
    is_returning: bool
    is_installed: bool
    last_reported: int | None


T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """Parsed records, how many were rejected and why (first few reasons)."""

    records: tuple[T, ...]
    last_updated: int
    ttl: int
    version: str
    rejected: int
    reasons: tuple[str, ...]


def _document(raw: bytes | str | dict[str, Any], what: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        doc = raw
    else:
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FeedError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise FeedError(f"{what}: not a GBFS document (no 'data' object)")
    if not isinstance(doc.get("last_updated"), int | str):
        raise FeedError(f"{what}: 'last_updated' is missing")
    return doc


def _text(value: Any) -> str:
    """GBFS 3.0 localised strings are lists of {text, language}; 2.x plain strings."""
    if isinstance(value, list):
        return str(value[0]["text"]) if value and isinstance(value[0], dict) else ""
    return str(value) if value is not None else ""


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


def _last_updated(doc: dict[str, Any]) -> int:
    value = doc["last_updated"]
    if isinstance(value, int):
        return value
    from datetime import datetime

    return int(datetime.fromisoformat(str(value)).timestamp())  # 3.0 uses RFC 3339


def parse_station_information(raw: bytes | str | dict[str, Any]) -> Parsed[StationInfo]:
    """Parse station_information.json.

    Raises
    ------
    FeedError
        If the document itself is unusable (records are dropped individually).
    """
    doc = _document(raw, "station_information")
    stations = doc["data"].get("stations")
    if not isinstance(stations, list):
        raise FeedError("station_information: 'data.stations' is not a list")
    out: list[StationInfo] = []
    reasons: list[str] = []
    for item in stations:
        try:
            lat, lon = float(item["lat"]), float(item["lon"])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError("coordinates out of range")
            capacity = item.get("capacity")
            out.append(
                StationInfo(
                    str(item["station_id"]),
                    _text(item.get("name")),
                    lat,
                    lon,
                    None if capacity is None else int(capacity),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            reasons.append(
                f"station {item.get('station_id', '?') if isinstance(item, dict) else '?'}: {exc}"
            )
    return Parsed(
        tuple(out),
        _last_updated(doc),
        int(doc.get("ttl", 0)),
        str(doc.get("version", "")),
        len(reasons),
        tuple(reasons[:10]),
    )


def parse_station_status(raw: bytes | str | dict[str, Any]) -> Parsed[StationStatus]:
    """Parse station_status.json (``num_bikes_*`` in 2.x, ``num_vehicles_*`` in 3.0)."""
    doc = _document(raw, "station_status")
    stations = doc["data"].get("stations")
    if not isinstance(stations, list):
        raise FeedError("station_status: 'data.stations' is not a list")
    out: list[StationStatus] = []
    reasons: list[str] = []
    for item in stations:
        try:
            vehicles = item.get("num_vehicles_available", item.get("num_bikes_available"))
            docks = int(item.get("num_docks_available", 0))
            if vehicles is None or int(vehicles) < 0 or docks < 0:
                raise ValueError("missing or negative availability")
            out.append(
                StationStatus(
                    station_id=str(item["station_id"]),
                    num_vehicles_available=int(vehicles),
                    num_docks_available=docks,
                    is_renting=_flag(item["is_renting"]),
                    is_returning=_flag(item["is_returning"]),
                    is_installed=_flag(item["is_installed"]),
                    last_reported=None
                    if item.get("last_reported") is None
                    else int(item["last_reported"])
                    if str(item["last_reported"]).isdigit()
                    else None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            reasons.append(
                f"station {item.get('station_id', '?') if isinstance(item, dict) else '?'}: {exc}"
            )
    return Parsed(
        tuple(out),
        _last_updated(doc),
        int(doc.get("ttl", 0)),
        str(doc.get("version", "")),
        len(reasons),
        tuple(reasons[:10]),
    )
