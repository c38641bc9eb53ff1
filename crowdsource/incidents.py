"""Incidents and closures operators declare: stored under ``ops:<city>:incident:<id>``,
announced as ``incident.declared`` / ``incident.ended``, audited. Edge confirmations and
dismissals, and the class that records both, are :mod:`crowdsource.operators`."""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from correspondance.errors import CorrespondanceError, InputError
from correspondance.store import StateStore
from correspondance.store.events import utc_now
from crowdsource.audit import AuditLog
from crowdsource.drive_edges import (
    check_edge,
    check_level,
    check_ttl,
    encode_record,
    opposite_edges,
)
from routing.errors import OutsideCityError

if TYPE_CHECKING:
    from routing.base import CityBase

IncidentKind = Literal["closure", "incident"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = ("closure", "incident")
DEFAULT_INCIDENT_TTL_S = 4 * 3600
MAX_NOTE_LENGTH = 500
INCIDENT_DECLARED = "incident.declared"
INCIDENT_ENDED = "incident.ended"
MAX_INCIDENT_EDGES = 200


class UnknownIncidentError(CorrespondanceError, LookupError):
    """No incident in force has that id (it never existed, ended or expired)."""

    code = "unknown_incident"


def incident_key(city: str, incident_id: str) -> str:
    """Store key of a declared incident or closure (JSON, expires with the incident)."""
    return f"ops:{city}:incident:{incident_id}"


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


class IncidentDesk:
    """Declares, lists, edits and ends incidents (the incident half of
    :class:`crowdsource.operators.OperatorDecisions`).

    Parameters
    ----------
    store : StateStore
        Where incidents are kept and published.
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
        check_ttl(expires_in_s)
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
            check_ttl(expires_in_s)
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
            encode_record(asdict(incident)),
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


_INCIDENT_ID = re.compile(r"^[0-9a-f]{16}$")


def _check_incident(kind: str, level: int | None, note: str | None) -> None:
    check_level(level)
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
