"""Input of the GTFS-only ``plan`` command: its command-line values (times, coordinates,
modes) and ``--queries`` files, checked against the network with one error listing every
problem. Answering is the planner's (:func:`routing.plan.answer`).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

from correspondance.errors import InputError
from routing.gtfs_network import (
    SUPPORTED_MODES,
    CoordPoint,
    Endpoint,
    StopPoint,
    StopQuery,
    TransitNetwork,
)
from routing.timetable import BaseTimetable

CITY_BUILD_MODES = frozenset(
    {"bike", "bicycle", "drive", "car", "bikeshare", "bike_share", "scooter", "carshare"}
)
_DEPART = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*"
_LAT_LON = re.compile(rf"^{_NUMBER},{_NUMBER}$")


def parse_depart(text: str, option: str = "--depart") -> dt.datetime:
    """``YYYY-MM-DDTHH:MM:SS`` → naive local datetime.

    Raises
    ------
    InputError
        If the text is not exactly that form or not a real date and time.
    """
    try:
        if not _DEPART.match(text):
            raise ValueError("expected YYYY-MM-DDTHH:MM:SS")
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise InputError(
            f"{option}: {text!r} is not a local time YYYY-MM-DDTHH:MM:SS ({exc})", field=option
        ) from exc


def parse_lat_lon(text: str, option: str) -> CoordPoint:
    """``LAT,LON`` in degrees → :class:`CoordPoint`.

    Raises
    ------
    InputError
        If the text is not two numbers or they are out of range.
    """
    found = _LAT_LON.match(text)
    if found is None:
        raise InputError(f"{option}: {text!r} is not LAT,LON (two decimal degrees)", field=option)
    lat, lon = float(found[1]), float(found[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(
            f"{option}: {text!r} is out of range (latitude −90..90, longitude −180..180)",
            field=option,
        )
    return CoordPoint(lat, lon)


def parse_modes(text: str) -> frozenset[str]:
    """``walk,transit`` → the set of modes.

    Raises
    ------
    InputError
        If a mode is unknown, needs a city build (street modes, sharing), or none is given.
    """
    modes = frozenset(m.strip().lower() for m in text.split(",") if m.strip())
    if not modes:
        raise InputError("--modes: no mode given (use walk,transit)", field="--modes")
    needs_city = sorted(modes & CITY_BUILD_MODES)
    if needs_city:
        raise InputError(
            f"--modes: {', '.join(needs_city)} need(s) a city build with live street and "
            "vehicle data: use the HTTP API (correspondance serve); plan accepts walk,transit",
            field="--modes",
        )
    unknown = sorted(modes - SUPPORTED_MODES)
    if unknown:
        raise InputError(
            f"--modes: unknown mode(s) {', '.join(unknown)} (plan accepts walk,transit)",
            field="--modes",
        )
    return modes


def read_queries(network: TransitNetwork, path: Path) -> list[StopQuery]:
    """Queries from a CSV with columns ``from_stop,to_stop,depart``, in file order.

    Every row is checked first; one error lists every problem.

    Raises
    ------
    InputError
        If the file is unreadable, lacks a column, or any row names an unknown stop or a
        malformed time.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--queries: cannot read {path} ({exc})", field="--queries") from exc
    missing = {"from_stop", "to_stop", "depart"} - columns
    if rows and missing:
        raise InputError(
            f"--queries: {path} lacks column(s) {', '.join(sorted(missing))}", field="--queries"
        )
    problems: list[str] = []
    queries: list[StopQuery] = []
    known = _stop_ids(network.timetable)
    for line, row in enumerate(rows, start=2):
        here: list[str] = []
        from_stop = (row.get("from_stop") or "").strip()
        to_stop = (row.get("to_stop") or "").strip()
        for stop_id in (from_stop, to_stop):
            if stop_id not in known:
                here.append(f"line {line}: unknown stop_id {stop_id!r}")
        try:
            depart = parse_depart((row.get("depart") or "").strip(), "depart")
        except InputError as exc:
            here.append(f"line {line}: {exc}")
        if here:
            problems += here
            continue
        queries.append(StopQuery(StopPoint(from_stop), StopPoint(to_stop), depart))
    if problems:
        raise InputError(
            f"--queries {path}: {len(problems)} problem(s): " + "; ".join(problems),
            field="--queries",
        )
    return queries


def _stop_ids(timetable: BaseTimetable) -> frozenset[str]:
    return frozenset(str(s) for s in timetable.stop_ids)


def check_endpoint(network: TransitNetwork, endpoint: Endpoint, option: str) -> None:
    """Raise :class:`~routing.errors.UnknownStopError` naming ``option`` for a bad stop_id."""
    if isinstance(endpoint, StopPoint):
        from routing.errors import UnknownStopError

        try:
            network.timetable.stop_index(endpoint.stop_id)
        except UnknownStopError as exc:
            raise UnknownStopError(f"{option}: {exc}") from exc
