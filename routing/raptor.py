"""RAPTOR's public face: the journey model and every transit search, from one import.

The searches live in two modules: :mod:`routing.raptor_forward` (earliest arrival: RAPTOR
and McRAPTOR, and the journey model) and :mod:`routing.raptor_reverse` (arrive-by on the
time-reversed timetable, and range queries). The planner and the stop-to-stop query import
them from here.
"""

from routing.raptor_forward import (
    INF_T,
    LAST_MC_STATS,
    MC_BAG_CAPACITY,
    FootLeg,
    Footpaths,
    McStats,
    RideLeg,
    TransitJourney,
    run_mc_raptor,
    run_raptor,
)
from routing.raptor_reverse import (
    ReversedDay,
    reverse_day,
    reverse_footpaths,
    run_mc_raptor_arrive_by,
    run_raptor_arrive_by,
    run_raptor_range,
)

__all__ = [
    "INF_T",
    "LAST_MC_STATS",
    "MC_BAG_CAPACITY",
    "FootLeg",
    "Footpaths",
    "McStats",
    "ReversedDay",
    "RideLeg",
    "TransitJourney",
    "reverse_day",
    "reverse_footpaths",
    "run_mc_raptor",
    "run_mc_raptor_arrive_by",
    "run_raptor",
    "run_raptor_arrive_by",
    "run_raptor_range",
]
