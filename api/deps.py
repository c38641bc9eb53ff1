"""Dependencies: routes get state through these ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.state import AppState
from correspondance.errors import UnknownCityError
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
