"""Property tests (hypothesis): on any door-to-door plan in Porto Alegre, every walked metre
is counted in ``distance_m`` (connectors, partial edges, transfer walks: what the leg draws),
and the clock times, durations and distances a traveller is shown agree by construction."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correspondance.geo import haversine_m
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.errors import NoStreetNearbyError
from routing.plan import Leg, PlanRequest, plan_trip
from routing.transit_geometry import line_metres

POA_TZ = ZoneInfo("America/Sao_Paulo")
# the centre of Porto Alegre, where the EPTC sample's buses and the OSM extract overlap
LAT = st.floats(-30.075, -30.005)
LON = st.floats(-51.235, -51.160)
SECONDS = st.integers(0, 3 * 3600 - 1)


def drawn_m(leg: Leg) -> float:
    return line_metres(leg.geometry)


def crow_m(leg: Leg) -> float:
    return float(
        haversine_m(leg.origin.lat, leg.origin.lon, leg.destination.lat, leg.destination.lon)
    )


@pytest.mark.slow
def test_every_walked_metre_is_counted_and_shown_times_agree(poa_base: CityBase) -> None:
    # the base is a closure, not an argument: hypothesis would print it with every example
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,  # the same examples on every run: the suite stays reproducible
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(lat1=LAT, lon1=LON, lat2=LAT, lon2=LON, offset=SECONDS)
    def check(lat1: float, lon1: float, lat2: float, lon2: float, offset: int) -> None:
        check_plan(poa_base, (lat1, lon1), (lat2, lon2), offset)

    check()


def check_plan(
    base: CityBase, origin: tuple[float, float], destination: tuple[float, float], offset: int
) -> None:
    depart = dt.datetime(2019, 5, 15, 12, 0, tzinfo=POA_TZ) + dt.timedelta(seconds=offset)
    try:
        plan = plan_trip(base, PlanRequest(origin, destination, depart))
    except NoStreetNearbyError:
        return  # a point in the river or a park: refused with a clear error, not planned
    assert plan
    for it in plan:
        walked = 0.0
        for leg in it.legs:
            seconds = (leg.arrival - leg.departure).total_seconds()
            assert seconds >= 0
            if leg.mode != "walk":
                continue
            # never less than the crow flies, and every metre of the drawn line
            assert leg.distance_m >= crow_m(leg) - 1.0, leg
            if len(leg.geometry) > 2:
                assert leg.distance_m == pytest.approx(drawn_m(leg), rel=0.02, abs=3.0), leg
                assert seconds == pytest.approx(leg.distance_m / 1.3, abs=2.0), leg
            walked += leg.distance_m
        # the itinerary's walking is the sum of its walk legs, as sent
        out = ItineraryOut.of(it)
        assert out.walk_m == pytest.approx(round(walked, 1), abs=0.11)
        # shown clocks (HH:MM) and the shown duration agree, by construction
        start = out.departure.replace(second=0, microsecond=0)
        end = out.arrival.replace(second=0, microsecond=0)
        assert out.duration_s == (end - start).total_seconds()
        assert out.duration_s % 60 == 0
        # each leg's duration is exactly its clock times' difference; legs chain in time
        for leg_out in out.legs:
            assert leg_out.duration_s == int((leg_out.arrival - leg_out.departure).total_seconds())
        for before, after in zip(out.legs, out.legs[1:], strict=False):
            assert after.departure >= before.arrival
        assert out.departure == out.legs[0].departure
        assert out.arrival == out.legs[-1].arrival
        assert np.isfinite(out.walk_s)
