"""The scripted live-trip demo: simulated contributors report the road ahead closed.

Only with ``CORRESPONDANCE_DEMO=true``. The reports go into the same repository as real
ones and through the same fusion (k distinct contributors on k distinct networks), so what
the traveller then sees is the product's real path from reports to a switch suggestion;
the contributors are labelled ``demo`` (their keyed hashes start from a fixed demo label)
and the API answers ``"simulated": true``.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time

import numpy as np

from correspondance.errors import CorrespondanceError
from crowdsource.models import Report
from crowdsource.repository import ReportRepository
from realtime.trips.plan_view import TripPlan, leg_fraction
from realtime.trips.sessions import TripSession
from routing.base import CityBase


class DemoDisabledError(CorrespondanceError, LookupError):
    """The scripted demo is off on this server."""

    code = "demo_disabled"


JAM_RADIUS_M = 1200.0


def edges_ahead(base: CityBase, plan: TripPlan, session: TripSession) -> list[int]:
    """The scripted jam: the rest of the trip's current (or next) drive leg from a little
    ahead of the car, and every drive street within :data:`JAM_RADIUS_M` of where that leg
    ends, so a detour cannot avoid it (the downtown gridlock a switch is made for)."""
    now = session.now()
    drive = base.streets["drive"]
    for leg in plan.legs[plan.leg_index_at(now) :]:
        if leg.drive_edges and now < leg.arrival:
            done = int(leg_fraction(leg, now) * len(leg.drive_edges))
            start = min(done + 3, max(len(leg.drive_edges) - 1, 0))
            lat, lon = leg.destination
            dy = (drive.node_lat[drive.tail] - lat) * 111_195.0
            dx = (drive.node_lon[drive.tail] - lon) * 111_195.0 * math.cos(math.radians(lat))
            near = np.flatnonzero(np.hypot(dx, dy) < JAM_RADIUS_M)
            return sorted(set(leg.drive_edges[start:]) | {int(e) for e in near})
    return []


async def jam_ahead(
    repository: ReportRepository,
    base: CityBase,
    plan: TripPlan,
    session: TripSession,
    contributors: int,
) -> int:
    """Store ``contributors`` simulated jam reports on the edges ahead; returns how many
    edges they cover (0: the trip drives no further)."""
    edges = edges_ahead(base, plan, session)
    drive = base.streets["drive"]
    if not edges:
        return 0
    mid = edges[len(edges) // 2]
    lat = float((drive.node_lat[drive.tail[mid]] + drive.node_lat[drive.head[mid]]) / 2)
    lon = float((drive.node_lon[drive.tail[mid]] + drive.node_lon[drive.head[mid]]) / 2)
    dy = float(drive.node_lat[drive.head[mid]] - drive.node_lat[drive.tail[mid]])
    dx = float(drive.node_lon[drive.head[mid]] - drive.node_lon[drive.tail[mid]]) * math.cos(
        math.radians(lat)
    )
    heading = float(np.degrees(np.arctan2(dx, dy)) % 360.0)
    now = time.time()
    for i in range(contributors):
        label = f"demo:{session.trip_id}:{i}"
        await repository.add(
            Report(
                report_id=secrets.token_hex(16),
                contributor=hashlib.sha256(label.encode()).hexdigest(),
                lat=lat,
                lon=lon,
                kind="closure",
                level=None,
                heading=heading,
                mode="car",
                observed_at=now,
                received_at=now,
                edge_ids=tuple(edges),
                city=session.city,
                origin=hashlib.sha256(f"demo-network:{i}".encode()).hexdigest(),
            )
        )
    return len(edges)


def into_first_drive(plan: TripPlan, session: TripSession, fraction: float = 0.15) -> bool:
    """Move the trip's clock to ``fraction`` into its first drive leg still ahead (the demo
    starts with the traveller already at the wheel). False if no drive leg is ahead."""
    now = session.now()
    for leg in plan.legs[plan.leg_index_at(now) :]:
        if leg.drive_edges and now < leg.arrival:
            target = leg.departure + (leg.arrival - leg.departure) * fraction
            if target > now:
                session.clock_offset_s += (target - now).total_seconds()
            return True
    return False
