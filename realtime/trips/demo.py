"""The scripted live-trip demo: the road ahead is closed, for the demo trip alone.

Only with ``CORRESPONDANCE_DEMO=true``. The simulated jam is a *private* closure: the edges
are stored in the trip's own session (``private_closures``) and the trip engine applies them
only when it evaluates that trip (``TripEngine._live_for``). Nothing goes into the report
repository or the city's congestion, so other travellers' plans never change and every run
of the demo starts from the same city; the closures go when the trip ends or expires. From
there on it is the product's real path: the engine's deadline queue, repair, replan and
switch policy. The API answers ``"simulated": true``.
"""

from __future__ import annotations

import numpy as np

from correspondance.errors import CorrespondanceError
from correspondance.geo import haversine_m
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
            gap = haversine_m(drive.node_lat[drive.tail], drive.node_lon[drive.tail], lat, lon)
            near = np.flatnonzero(gap < JAM_RADIUS_M)
            return sorted(set(leg.drive_edges[start:]) | {int(e) for e in near})
    return []


def jam_privately(base: CityBase, plan: TripPlan, session: TripSession) -> int:
    """Close the road ahead (:func:`edges_ahead`) for this trip alone: the edges go into the
    session's ``private_closures``, which the trip engine applies when it evaluates this
    trip and nowhere else. Returns how many edges are closed (0: no drive ahead)."""
    edges = edges_ahead(base, plan, session)
    session.private_closures = edges
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
