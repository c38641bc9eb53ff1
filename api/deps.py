"""Dependencies: routes get state and services through these ``Annotated`` aliases.

The services (``crowdsource.desk``, ``realtime.trips.service``, ...) are wired to the store
here and in ``api.state``; a route never sees the store itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.state import AppState
from correspondance.errors import UnknownCityError
from crowdsource.congestion import CongestionService
from crowdsource.operator_desk import OperatorDesk
from realtime.trips.service import TripService
from routing.base import CityBase
from routing.places import PlaceIndex


def get_state(request: Request) -> AppState:
    """The application state built by the lifespan."""
    state: AppState = request.app.state.correspondance
    return state


State = Annotated[AppState, Depends(get_state)]


def get_city_base(
    state: State,
    city: Annotated[
        str | None, Query(description="City id; the default city if omitted.", max_length=64)
    ] = None,
) -> CityBase:
    """The loaded base of the requested (or default) city."""
    city_id = city or state.default_city
    base = state.bases.get(city_id)
    if base is None:
        served = ", ".join(sorted(state.bases)) or "none"
        raise UnknownCityError(f"unknown city {city_id!r}; this server serves: {served}")
    return base


CityBaseDep = Annotated[CityBase, Depends(get_city_base)]


def get_place_index(state: State, base: CityBaseDep) -> PlaceIndex:
    """The place search index of the requested (or default) city."""
    return state.places[base.city.id]


PlacesDep = Annotated[PlaceIndex, Depends(get_place_index)]


def get_trip_service(state: State) -> TripService:
    """The live-trip service (``realtime.trips.service``)."""
    return state.trip_service()


TripsDep = Annotated[TripService, Depends(get_trip_service)]


def get_congestion(state: State) -> CongestionService:
    """The live congestion service (``crowdsource.congestion``)."""
    return state.congestion()


CongestionDep = Annotated[CongestionService, Depends(get_congestion)]


def get_operator_desk(state: State) -> OperatorDesk:
    """Operator decisions, audit and dashboard history (``crowdsource.operator_desk``)."""
    return state.operator_desk()


OperatorDeskDep = Annotated[OperatorDesk, Depends(get_operator_desk)]
