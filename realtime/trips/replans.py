"""Full replans shared by the trips of an event: from the decision point, not from each car.

When a trip's cheap repair (:mod:`realtime.trips.repair`) still loses real time, the engine
pays for a full multimodal replan (:func:`routing.state.replan`). Travellers on the same
route meeting the same trouble are all at different places, so replanning from where each
one is costs one search per trip. But each of them drives on along the route to the same
last junction before the trouble (:class:`~realtime.trips.repair.Junction`), the point where
a switch is still possible, and decides there. :class:`Replans` replans from that junction,
holding what the traveller holds, leaving when the schedule has them there, and shares the
answer as :class:`~realtime.trips.onward.Onward` does: the earliest itinerary found for a
time ``t0`` is also the earliest for a traveller there at ``t`` when ``t0 <= t`` and it leaves
no earlier than ``t`` (access legs end at boarding), and a street-only answer is the same
drive at any time. :func:`via_junction` puts the route up to the junction in front of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np

from correspondance.geo import WALK_SPEED_M_S
from realtime.trips.onward import SharedSearches
from realtime.trips.plan_view import TripPlan, traveller_state
from realtime.trips.repair import Junction, Repair
from routing.base import CityBase
from routing.chains import edges_geometry
from routing.overlay import LiveOverlay
from routing.plan import Itinerary, Place
from routing.state import TravellerState, replan
from routing.streets import StreetNetwork

Key = tuple[float, float, str, str | None, tuple[float, float], frozenset[str]]


class Replans(SharedSearches[Key]):
    """Earliest full replans from decision points under one overlay (thread-safe; one per
    overlay, like :class:`~realtime.trips.repair.Bypasses`); ``searches`` counts
    :func:`routing.state.replan` runs."""

    def best(
        self, state: TravellerState, destination: tuple[float, float], modes: frozenset[str]
    ) -> Itinerary | None:
        """The earliest-arriving itinerary of ``replan(state, destination, modes)`` (``None``
        when there is none), searched once for every state at the same place holding the
        same that it also answers. Raises what :func:`~routing.state.replan` raises for a
        state it cannot plan from (a vehicle the overlay does not know)."""
        assert state.lat is not None and state.lon is not None
        key = (state.lat, state.lon, state.holding, state.system_id, destination, modes)
        return self.shared(
            key,
            state.at,
            lambda: replan(self.base, state, destination, self.overlay, modes, self.walk_speed_m_s),
        )


def via_junction(
    drive: StreetNetwork, repaired: Itinerary, junction: Junction, onward: Itinerary
) -> Itinerary:
    """``repaired``'s legs before the junction's leg, that leg's drive up to the junction,
    then ``onward`` (planned from the junction); the two drives are one leg when ``onward``
    starts by driving on in the same vehicle."""
    legs = repaired.legs
    car = legs[junction.leg]
    lat, lon = float(drive.node_lat[junction.node]), float(drive.node_lon[junction.node])
    first = onward.legs[0]
    kept = list(junction.kept)
    if first.mode == car.mode and first.drive_edges:
        edges = kept + list(first.drive_edges)
        merged = replace(
            first,
            origin=car.origin,
            departure=car.departure,
            drive_edges=tuple(edges),
            distance_m=float(np.sum(drive.length_m[np.asarray(edges, dtype=np.int64)])),
            geometry=edges_geometry(drive, edges) or list(first.geometry),
        )
        rest = [merged, *onward.legs[1:]]
    else:
        there = Place(first.origin.name or car.destination.name, lat, lon)
        driven = replace(
            car,
            destination=there,
            arrival=max(junction.at, car.departure),
            drive_edges=tuple(kept),
            distance_m=float(np.sum(drive.length_m[np.asarray(kept, dtype=np.int64)]))
            if kept
            else 0.0,
            geometry=edges_geometry(drive, kept) or [(car.origin.lon, car.origin.lat), (lon, lat)],
        )
        rest = ([driven] if kept else []) + [replace(first, origin=there), *onward.legs[1:]]
    return Itinerary(list(legs[: junction.leg]) + rest, onward.transfers)


def full_replan(
    base: CityBase,
    plan: TripPlan,
    now: dt.datetime,
    position: tuple[float, float] | None,
    modes: frozenset[str],
    overlay: LiveOverlay,
    fixed: Repair | None,
    replans: Replans | None,
    walk_speed_m_s: float = WALK_SPEED_M_S,
) -> list[Itinerary]:
    """The full multimodal replan of a followed ``plan`` at ``now``: from its repair's
    junction when it has one still ahead (shared through ``replans``), else from where the
    traveller is (``position``, or where the schedule puts them)."""
    junction = fixed.junction if fixed is not None else None
    drive = base.streets.get("drive")
    if junction is None or replans is None or drive is None or junction.at <= now:
        state = traveller_state(plan, now, position)
        return replan(base, state, plan.destination, overlay, modes, walk_speed_m_s)
    assert fixed is not None
    there = (float(drive.node_lat[junction.node]), float(drive.node_lon[junction.node]))
    best = replans.best(traveller_state(plan, junction.at, there), plan.destination, modes)
    return [via_junction(drive, fixed.itinerary, junction, best)] if best is not None else []
