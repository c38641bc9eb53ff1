"""Cheap repairs shared by every trip one event touches: drive around what changed.

A change of congestion slows or closes some drive edges. Each affected car trip's remaining
route meets them in *runs* (maximal stretches of consecutive edges whose live multiplier is
not 1). The cheap repair of a trip keeps its route up to the last junction before the first
run (:func:`last_junction`: the last node on the way with an open street other than the
route's own) and from there takes the fastest way to the end of the drive on the live drive
network (which may be the old route, just slower). Rejoining the old route right after the
run is not enough: on simplified one-way streets the node after a closed edge often has no
other way in, and the node before it often no other way out.

The fastest way is one bounded Dijkstra from that junction, and every trip that meets trouble
at the same junction shares it: :class:`Bypasses` runs one search per source node, towards
every drive end any queued trip needs from there, the first time one of them asks. The
repair's arrival tells the engine whether the trip lost anything real; only then does it pay
for the full multimodal replan (``routing.state.replan``).

A car + transit trip (park & ride) whose detour reaches the car park too late for its
connection is not given up: it goes on from the car park by the earliest walk + transit way
leaving when the car is parked, one search shared by every trip with the same car park,
destination and catchable connection (:mod:`realtime.trips.onward`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from realtime.trips.onward import Onward
from realtime.trips.plan_view import PlanLeg, TripPlan, leg_fraction
from routing.chains import edges_geometry
from routing.itinerary import Itinerary, Leg, Place
from routing.kernels import dijkstra
from routing.overlay import LiveOverlay
from routing.streets import StreetNetwork

if TYPE_CHECKING:
    from realtime.trips.replans import Replans

BYPASS_LIMIT_S = 3600.0  # a way around that takes longer than an hour is no repair
MAX_TRIES = 3  # junctions tried, walking back from the trouble, before giving up
MISSED_S = 60  # reaching a connection this late still makes it (as ``project`` allows)
HERE = "where you are"

Pair = tuple[int, int]  # (source node, target node)


def runs(route: NDArray[np.int64], multiplier: NDArray[np.float64]) -> list[tuple[int, int]]:
    """Maximal stretches ``[lo, hi)`` of ``route`` whose edges' multiplier is not 1."""
    changed = ~(multiplier[route] == 1.0)
    out: list[tuple[int, int]] = []
    i, n = 0, len(route)
    while i < n:
        if changed[i]:
            j = i
            while j < n and changed[j]:
                j += 1
            out.append((i, j))
            i = j
        else:
            i += 1
    return out


def last_junction(
    drive: StreetNetwork, route: NDArray[np.int64], lo: int, multiplier: NDArray[np.float64]
) -> int:
    """Index in ``route`` of the last edge at or before ``lo`` whose tail offers another open
    street than the route's own edge: the last point where the driver can still turn off
    (0 if none does: where the remaining route starts)."""
    k = lo
    while k > 0:
        node = int(drive.tail[route[k]])
        outs = np.arange(drive.indptr[node], drive.indptr[node + 1])
        if np.any((outs != route[k]) & np.isfinite(multiplier[outs])):
            return k
        k -= 1
    return 0


def remaining_route(leg: PlanLeg, at: dt.datetime, current: bool) -> NDArray[np.int64]:
    """The drive edges of ``leg`` still ahead at ``at`` (the whole leg if it is not under
    way), counted as :func:`~realtime.trips.plan_view.project` counts them."""
    route = np.asarray(leg.drive_edges, dtype=np.int64)
    if current:
        route = route[int(leg_fraction(leg, at) * len(route)) :]
    return route


def bypass_pairs(
    drive: StreetNetwork, plan: TripPlan, at: dt.datetime, overlay: LiveOverlay
) -> list[Pair]:
    """The (source, target) junction pairs the repair of ``plan`` at ``at`` needs: per drive
    leg with trouble ahead, the last junction before it and the leg's last junction."""
    out: list[Pair] = []
    first = plan.leg_index_at(at)
    for i in range(first, len(plan.legs)):
        leg = plan.legs[i]
        if not leg.drive_edges:
            continue
        route = remaining_route(leg, at, i == first)
        stretches = runs(route, overlay.drive_multiplier)
        if stretches:
            k = last_junction(drive, route, stretches[0][0], overlay.drive_multiplier)
            out.append((int(drive.tail[route[k]]), int(drive.head[route[-1]])))
    return out


class Bypasses:
    """Fastest ways between junctions on one overlay's live drive network, searched once
    per source node for every target wanted from it (thread-safe; one per overlay)."""

    def __init__(
        self,
        drive: StreetNetwork,
        overlay: LiveOverlay,
        onward: Onward | None = None,
        replans: Replans | None = None,
    ) -> None:
        self.drive = drive
        self.overlay = overlay
        # onward transit from where a drive ends, for repairs that miss their connection
        self.onward = onward
        # full replans from the junctions where repairs leave their routes
        self.replans = replans
        self.weight = overlay.drive_weights(drive)
        self.searches = 0  # Dijkstra runs so far (tests, benchmarks)
        self._wanted: dict[int, set[int]] = defaultdict(set)
        self._found: dict[Pair, tuple[float, tuple[int, ...]]] = {}
        self._lock = threading.Lock()

    def want(self, pairs: list[Pair]) -> None:
        """Announce pairs some queued trip will ask for (so one search serves them all)."""
        with self._lock:
            for source, target in pairs:
                if (source, target) not in self._found:
                    self._wanted[source].add(target)

    def way(self, source: int, target: int) -> tuple[float, tuple[int, ...]]:
        """(seconds, edges) of the fastest way from ``source`` to ``target`` under the
        overlay; ``(inf, ())`` when there is none within :data:`BYPASS_LIMIT_S`."""
        key = (source, target)
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                return found
            targets = self._wanted.pop(source, set()) | {target}
        drive = self.drive
        wanted = np.fromiter(targets, np.int64, len(targets))
        dist, pred = dijkstra(
            drive.indptr,
            drive.head,
            self.weight,
            np.array([source], np.int64),
            np.zeros(1),
            BYPASS_LIMIT_S,
            wanted,
        )
        results: dict[Pair, tuple[float, tuple[int, ...]]] = {}
        for t in targets:
            cost = float(dist[t])
            path = tuple(drive.path_edges(pred, t)) if np.isfinite(cost) else ()
            results[(source, t)] = (cost, path)
        with self._lock:
            self.searches += 1
            self._found.update(results)
            return self._found[key]


@dataclass(frozen=True)
class Junction:
    """Where the repaired way leaves the followed route: the decision point."""

    leg: int  # index in the repair's ``itinerary.legs`` of the drive leg it is on
    kept: tuple[int, ...]  # that leg's drive edges up to it (the route still followed)
    node: int  # the drive node
    at: dt.datetime  # when the schedule has the traveller there


@dataclass(frozen=True)
class Repair:
    """A followed plan driven around what changed: when it arrives, as an itinerary."""

    arrival: dt.datetime
    itinerary: Itinerary
    first_changed_leg: int  # index in ``itinerary.legs`` of the first rerouted leg
    junction: Junction | None = None  # where the first rerouted leg leaves the route


def _shifted(leg: PlanLeg, shift: dt.timedelta) -> Leg:
    """The plan's routing leg, its times moved by ``shift``."""
    return replace(leg.leg, departure=leg.leg.departure + shift, arrival=leg.leg.arrival + shift)


def _onward(plan: TripPlan, legs: list[Leg], first: int, onward: Onward | None) -> list[Leg] | None:
    """``legs`` (the repaired plan from leg ``first`` up to a connection the detour misses)
    cut after their last drive leg and continued by the earliest walk + transit way from
    where it ends (:class:`~realtime.trips.onward.Onward`), leaving as long after parking as
    the plan did; ``None`` without a drive leg or an onward way."""
    if onward is None:
        return None
    last = next((j for j in range(len(legs) - 1, -1, -1) if legs[j].drive_edges), None)
    if last is None:
        return None
    car, after = plan.legs[first + last], plan.legs[first + last + 1]
    parked = max(after.departure - car.arrival, dt.timedelta(0))
    end = legs[last].destination
    found = onward.after((end.lat, end.lon), plan.destination, legs[last].arrival + parked)
    if found is None or not found.legs:
        return None
    rest = [replace(found.legs[0], origin=end), *found.legs[1:]]
    return legs[: last + 1] + rest


def repair(
    drive: StreetNetwork,
    plan: TripPlan,
    at: dt.datetime,
    here: tuple[float, float],
    bypasses: Bypasses,
) -> Repair | None:
    """The plan from ``at`` with each drive leg that meets slowed or closed edges driven the
    fastest way from the last junction before them to the leg's end (:class:`Bypasses`),
    timed under the live overlay.

    Later legs move with the detour; a transit connection after it keeps its own (live)
    times. When the detour misses it (by more than the minute
    :func:`~realtime.trips.plan_view.project` allows), the trip goes on from where its last
    drive before it ends by the earliest walk + transit way from then
    (``bypasses.onward``, shared: :mod:`realtime.trips.onward`). The repair fails
    (``None``) when the connection is cancelled, when the detour misses it and there is no
    onward search or way, when the drive cannot be done at all, or when nothing ahead is
    slowed or closed: the full replan answers those. ``here`` is where the traveller is.
    """
    first = plan.leg_index_at(at)
    if plan.legs[first].transit:
        return None  # aboard transit: nothing to drive around
    weight = bypasses.weight
    base_time = drive.base_time_s
    legs: list[Leg] = []
    shift = dt.timedelta(0)
    changed_leg: int | None = None
    junction: Junction | None = None
    transfers = int(plan.json.get("transfers", 0))
    for i in range(first, len(plan.legs)):
        leg = plan.legs[i]
        current = i == first
        if leg.transit:
            assert leg.trip_id is not None
            overlay = bypasses.overlay
            delay = dt.timedelta(seconds=int(overlay.trip_delays.get(leg.trip_id, 0)))
            reach = legs[-1].arrival if legs else at
            if leg.trip_id in overlay.cancelled_trips:
                return None  # the connection is gone: the full replan answers
            if reach > leg.departure + delay + dt.timedelta(seconds=MISSED_S):
                # the detour misses the connection: from where the drive ends, the fastest
                # transit from the new arrival there (one search shared by every trip with
                # the same transfer point, destination and catchable connection)
                rerouted = _onward(plan, legs, first, bypasses.onward)
                if rerouted is None:
                    return None
                legs = rerouted
                transfers = max(sum(1 for x in legs if x.trip_id) - 1, 0)
                break
            shift = delay  # the ride, and what follows it, keep the ride's own time
            legs.append(_shifted(leg, shift))
            continue
        if not leg.drive_edges:
            out = _shifted(leg, shift)
            if current and at > out.departure:
                out = replace(out, departure=at, origin=Place(HERE, here[0], here[1]))
            legs.append(out)
            continue
        route = remaining_route(leg, at, current)
        stretches = runs(route, bypasses.overlay.drive_multiplier)
        if not stretches and not current:
            legs.append(_shifted(leg, shift))
            continue
        new: list[int] = route.tolist()
        if stretches:
            multiplier = bypasses.overlay.drive_multiplier
            k = stretches[0][0] + 1
            for _ in range(MAX_TRIES):
                if k <= 0:
                    return None
                k = last_junction(drive, route, k - 1, multiplier)
                cost, path = bypasses.way(int(drive.tail[route[k]]), int(drive.head[route[-1]]))
                if np.isfinite(cost):
                    break
            else:
                return None
            if junction is None:
                passed = len(leg.drive_edges) - len(route)
                when = (
                    leg.departure
                    + shift
                    + (leg.arrival - leg.departure) * ((passed + k) / len(leg.drive_edges))
                )
                node = int(drive.tail[route[k]])
                junction = Junction(len(legs), tuple(new[:k]), node, max(when, at))
            new = new[:k] + list(path)
        edges = np.asarray(new, dtype=np.int64)
        # the plan's own time for the rest of the leg, plus what the new way costs more
        # under live conditions than the old way did at base times
        extra = float(np.sum(weight[edges]) - np.sum(base_time[route])) if len(route) else 0.0
        out = _shifted(leg, shift)
        start = max(at, out.departure) if current else out.departure
        arrival = out.arrival + dt.timedelta(seconds=extra)
        shift += dt.timedelta(seconds=extra)
        origin = Place(HERE, here[0], here[1]) if current and at > out.departure else out.origin
        if stretches and changed_leg is None:
            changed_leg = len(legs)
        legs.append(
            replace(
                out,
                origin=origin,
                departure=start,
                arrival=max(arrival, start),
                drive_edges=tuple(new),
                distance_m=float(np.sum(drive.length_m[edges])) if len(edges) else 0.0,
                geometry=edges_geometry(drive, new) or out.geometry,
            )
        )
    if changed_leg is None:
        return None
    itinerary = Itinerary(legs, transfers)
    return Repair(itinerary.arrival, itinerary, changed_leg, junction)
