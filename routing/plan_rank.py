"""Planner stage 6: the itinerary filter chain and ranking (modelled on OpenTripPlanner's
``ItineraryListFilterChain``); each filter is a named function tested alone.
"""

from __future__ import annotations

import datetime as dt

from correspondance.geo import WALK_SPEED_M_S, haversine_m
from routing.itinerary import Itinerary, Leg

MIN_RENTAL_M = 100.0


def _pointless_rental(it: Itinerary) -> bool:
    """A shared vehicle taken and returned at (almost) the same place: never worth it."""
    return any(
        leg.mode in ("bikeshare", "carshare", "scooter") and leg.distance_m < MIN_RENTAL_M
        for leg in it.legs
    )


def _revisits_a_stop(it: Itinerary) -> bool:
    """True for a trip that comes back through a stop it already left (there and back).

    Legal under the timetable (e.g. ride to the terminus and back to catch a pickup-only
    service) but never what a traveller wants; transfers at one stop are not revisits.
    """
    seen: set[str] = set()
    for leg in it.legs:
        if leg.trip_id is None:
            continue
        board, alight = leg.origin.stop_id or "", leg.destination.stop_id or ""
        if board in seen and board != "" and not _just_arrived(it, leg):
            return True
        seen.add(board)
        if alight in seen:
            return True
        seen.add(alight)
    return False


def _just_arrived(it: Itinerary, leg: Leg) -> bool:
    """Whether ``leg`` boards where the previous ride alighted (a same-stop transfer)."""
    rides = [x for x in it.legs if x.trip_id is not None]
    i = rides.index(leg)
    return i > 0 and rides[i - 1].destination.stop_id == leg.origin.stop_id


# Walking counts double when two options are compared (OpenTripPlanner's default walk
# reluctance is 2): an option that arrives later must save more walking than the time it
# loses, or it is not shown.
WALK_RELUCTANCE = 2.0


def generalized_cost(it: Itinerary) -> float:
    """Seconds door to door, each walked second counted ``WALK_RELUCTANCE`` times."""
    duration = (it.arrival - it.departure).total_seconds()
    return duration + (WALK_RELUCTANCE - 1) * it.walk_seconds


def rides_of(it: Itinerary) -> tuple[str, ...]:
    """The transit trips ridden, in order: what makes two transit options the same trip."""
    return tuple(leg.trip_id for leg in it.legs if leg.trip_id is not None)


def reboards_a_route_after_walking(it: Itinerary) -> bool:
    """True for "T7 → walk → T7": leaving a route to walk and board the same route again.

    Staying on a route means staying aboard; a change at the same stop to the same route
    (a trip that ends where the next one starts) is not a re-boarding through a walk.
    """
    previous: Leg | None = None
    walked = False
    for leg in it.legs:
        if leg.trip_id is None:
            walked = walked or (previous is not None and leg.mode == "walk" and leg.distance_m > 0)
            continue
        if previous is not None and walked and previous.route_id == leg.route_id:
            return True
        previous, walked = leg, False
    return False


def filter_same_rides(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Keep one option per sequence of rides: the one of least :func:`generalized_cost`.

    Two options on the same trips that differ only by where they get off (another stop of
    the same name 50 s later, to save 17 s of walking) are one option.
    """
    best: dict[tuple[str, ...], Itinerary] = {}
    out: list[Itinerary] = []
    for it in itineraries:
        key = rides_of(it)
        if not key:
            out.append(it)
            continue
        kept = best.get(key)
        if kept is None or generalized_cost(it) < generalized_cost(kept):
            best[key] = it
    return out + list(best.values())


def filter_slow_walk_savers(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Drop an option that is slower than another of its kind by more than it saves walking.

    The explicit rule: B goes when some A of the same family leaves no earlier, arrives
    no later, has no more transfers, and B's extra door-to-door time exceeds the walking
    it saves times (``WALK_RELUCTANCE`` − 1): with the default 2, minutes are never
    traded for seconds of walking, while an option that walks 10 minutes less to arrive
    5 minutes later stays. Later departures (the next trip) are never dropped here.
    """
    out = []
    for b in itineraries:
        lost = False
        for a in itineraries:
            if a is b or a.family != b.family:
                continue
            if a.departure < b.departure or a.arrival > b.arrival or a.transfers > b.transfers:
                continue
            slower = (b.arrival - b.departure).total_seconds() - (
                a.arrival - a.departure
            ).total_seconds()
            saved = a.walk_seconds - b.walk_seconds
            if slower > 0 and slower > (WALK_RELUCTANCE - 1) * saved:
                lost = True
                break
        if not lost:
            out.append(b)
    return out


# A short ride must save real time over walking its stretch (OpenTripPlanner prices this
# with a boarding cost in its generalized cost, 600 s by default for walk + transit): a ride
# of less than MIN_RIDE_S must save at least SHORT_RIDE_SAVING_S.
MIN_RIDE_S = 120.0
SHORT_RIDE_SAVING_S = 300.0
SHORT_RIDE_MODES = frozenset({"bus", "trolleybus", "coach", "tram"})  # a street alongside
STREET_DETOUR = 1.25  # walking between two stops of a street: the straight line × this


def pointless_short_ride(it: Itinerary, walk_speed_m_s: float = WALK_SPEED_M_S) -> bool:
    """True when the itinerary has a street-running ride of less than ``MIN_RIDE_S`` that
    saves less than ``SHORT_RIDE_SAVING_S`` over walking its stretch.

    The explicit rule: walking the ride's stretch (the shorter of its length and the straight
    line between its stops × ``STREET_DETOUR``, at the walking speed) is compared with the
    wait for the ride plus the ride; when walking takes no more than that plus
    ``SHORT_RIDE_SAVING_S``, the 1-minute bus ride is not worth boarding.
    """
    previous: Leg | None = None
    for leg in it.legs:
        ride_s = (leg.arrival - leg.departure).total_seconds()
        if leg.trip_id is not None and leg.mode in SHORT_RIDE_MODES and ride_s < MIN_RIDE_S:
            straight = float(
                haversine_m(
                    leg.origin.lat, leg.origin.lon, leg.destination.lat, leg.destination.lon
                )
            )
            walk_s = min(leg.distance_m, STREET_DETOUR * straight) / walk_speed_m_s
            wait_s = (leg.departure - previous.arrival).total_seconds() if previous else 0.0
            if walk_s <= wait_s + ride_s + SHORT_RIDE_SAVING_S:
                return True
        previous = leg
    return False


def filter_pointless_short_rides(
    itineraries: list[Itinerary], walk_speed_m_s: float = WALK_SPEED_M_S
) -> list[Itinerary]:
    """Drop options with a :func:`pointless_short_ride`, unless that would leave no transit
    option at all (a request is never left without transit by this rule alone)."""
    kept = [it for it in itineraries if not pointless_short_ride(it, walk_speed_m_s)]
    if any(rides_of(it) for it in itineraries) and not any(rides_of(it) for it in kept):
        return itineraries
    return kept


FAR_LATER_MIN_S = 3600.0


def filter_far_later(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Drop transit options arriving far later than the earliest arrival of any option.

    "Far" is more than the earliest-arriving option's own door-to-door time, and at least
    an hour: the next departures stay, a ride on tomorrow's first bus after a missed
    connection does not. Street-only options are never dropped here.
    """
    if not itineraries:
        return itineraries
    first = min(itineraries, key=lambda it: it.arrival)
    slack = max(FAR_LATER_MIN_S, (first.arrival - first.departure).total_seconds())
    latest = first.arrival + dt.timedelta(seconds=slack)
    return [it for it in itineraries if not rides_of(it) or it.arrival <= latest]


def rank(
    itineraries: list[Itinerary], limit: int = 8, walk_speed_m_s: float = WALK_SPEED_M_S
) -> list[Itinerary]:
    """Stage 6: the itinerary filter chain, then earliest arrival first.

    Modelled on OpenTripPlanner's ``ItineraryListFilterChain``; each filter is a named
    function tested alone: (1) drop there-and-back trips, pointless rentals, same-route
    re-boarding through a walk and bus rides under 2 minutes that save less than 5 minutes
    over walking (:func:`filter_pointless_short_rides`); (2) keep one option per sequence of rides
    (:func:`filter_same_rides`); (3) drop options dominated by one of the same kind (same
    non-walking modes: a fast car trip never hides transit, ten copies of one trip
    collapse); (4) drop options slower by minutes to save seconds of walking
    (:func:`filter_slow_walk_savers`); (5) drop transit options arriving far later than
    the earliest arrival (:func:`filter_far_later`).
    """
    kept: list[Itinerary] = []
    itineraries = [
        it
        for it in itineraries
        if not _revisits_a_stop(it)
        and not _pointless_rental(it)
        and not reboards_a_route_after_walking(it)
    ]
    itineraries = filter_same_rides(filter_pointless_short_rides(itineraries, walk_speed_m_s))
    for it in sorted(
        itineraries,
        key=lambda i: (i.arrival, i.transfers, i.walk_seconds, -i.departure.timestamp()),
    ):
        dominated = any(
            k.family == it.family
            and k.arrival <= it.arrival
            and k.transfers <= it.transfers
            and k.walk_seconds <= it.walk_seconds
            and k.departure >= it.departure
            for k in kept
        )
        if not dominated:
            kept.append(it)
    return filter_far_later(filter_slow_walk_savers(kept))[:limit]
