"""``GET /api/v1/places``: offline place search (stops, streets, points of interest,
addresses) over the city's index (``routing.places``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import PlacesDep
from api.schemas import ErrorOut
from routing.places import DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS, parse_near, search_places

router = APIRouter(prefix="/api/v1", tags=["places"])


class PlaceMatchOut(BaseModel):
    """One place found."""

    kind: Literal["stop", "street", "poi", "address"]
    name: str
    secondary: str = Field(
        description="Data shown under the name: a stop's routes, a point of interest's "
        "address, an address's postcode and town; may be empty."
    )
    category: str = Field(
        description="A fixed code the app words: transit_stop, station, street, address, "
        "school, hospital, park, shop, parking..."
    )
    lat: float
    lon: float
    ids: list[str] = Field(
        description="stop_ids for a stop (every stop of that name nearby); OSM ids "
        "('node/1', 'way/2') otherwise."
    )
    code: str = Field(description="The stop's stop_code(s), space separated; may be empty.")
    distance_m: float | None = Field(description="From 'near', when given.")
    score: float = Field(description="Rank score (higher is better); for ordering only.")


class PlacesOut(BaseModel):
    """Places matching a query, best first."""

    city: str
    query: str
    places: list[PlaceMatchOut]


@router.get(
    "/places",
    response_model=PlacesOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def get_places(
    index: PlacesDep,
    q: Annotated[
        str,
        Query(
            description=(
                f"What the traveller typed (at most {MAX_QUERY_CHARS} characters; the last "
                "word may be unfinished). Typos, case and accents are forgiven. 400 "
                "empty_query without a letter or digit, 400 query_too_long past the limit."
            )
        ),
    ],
    near: Annotated[
        str | None,
        Query(
            max_length=64,
            description="LAT,LON of the map centre: nearer places rank higher and results "
            "carry their distance. 400 non_finite_number / out_of_range / invalid_parameter.",
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(description=f"At most this many results, 1 to {MAX_LIMIT} (400 out_of_range)."),
    ] = DEFAULT_LIMIT,
) -> PlacesOut:
    """Search the city's stops, streets, points of interest and addresses, offline."""
    point = parse_near(near) if near is not None else None
    found = search_places(index, q, point, limit)
    return PlacesOut(
        city=index.city_id,
        query=q,
        places=[PlaceMatchOut.model_validate(place, from_attributes=True) for place in found],
    )
