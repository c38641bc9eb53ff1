"""API response models (pydantic at the edge)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from routing.codec import AlertOut, ItineraryOut, LegOut, LineString, PlaceOut, leg_alerts

__all__ = [
    "AlertOut",
    "CitiesOut",
    "CityOut",
    "ErrorDetail",
    "ErrorOut",
    "ItineraryOut",
    "LatLon",
    "LegOut",
    "LineString",
    "PageOut",
    "PlaceOut",
    "PlanOut",
    "leg_alerts",
]


class LatLon(BaseModel):
    """A coordinate."""

    lat: float
    lon: float


class PageOut(BaseModel):
    """Cursors to the neighbouring pages of a plan (pass one back as ``cursor``)."""

    earlier: str | None = Field(description="Options arriving before this page's first arrival.")
    later: str | None = Field(description="Options leaving after this page's last departure.")


class PlanOut(BaseModel):
    """Response of ``GET /api/v1/plan``."""

    city: str
    from_: LatLon = Field(alias="from")
    to: LatLon
    depart: dt.datetime | None = Field(description="The time asked to leave at (or null).")
    arrive: dt.datetime | None = Field(description="The time asked to arrive by (or null).")
    itineraries: list[ItineraryOut]
    page: PageOut

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class CityOut(BaseModel):
    """A served city."""

    id: str
    name: str
    timezone: str
    bbox: tuple[float, float, float, float]
    center: tuple[float, float]
    default_date: dt.date
    default_time: str
    default: bool
    attribution: list[str]
    service_start: dt.date
    service_end: dt.date


class ServiceDayOut(BaseModel):
    """Transit service on one calendar date (``GET /api/v1/cities/{city}/service``)."""

    date: dt.date
    trips: int = Field(description="Trips of this date's own services (GTFS calendar).")
    hours: list[int] = Field(
        description="Local hours (0–23) in which some trip runs, counting the previous "
        "day's trips after midnight; empty when nothing runs."
    )
    first_departure: str | None = Field(
        description="Earliest first departure of this date's trips (HH:MM:SS, GTFS time)."
    )
    last_departure: str | None = Field(
        description="Latest first departure of this date's trips (HH:MM:SS; may pass 24:00)."
    )
    modes: dict[str, list[int]] = Field(
        description="Per transit mode of the city (bus, rail...): the hours it runs that day "
        "(empty when it does not run), so a day with trains but no buses reads as such."
    )


class ServiceOut(BaseModel):
    """When transit runs in a city, per date, from its timetables."""

    city: str
    timezone: str
    service_start: dt.date = Field(description="First date any feed has service.")
    service_end: dt.date = Field(description="Last date any feed has service.")
    days: list[ServiceDayOut]


class CitiesOut(BaseModel):
    """Response of ``GET /api/v1/cities``."""

    cities: list[CityOut]


class ErrorDetail(BaseModel):
    """Machine code and human message."""

    code: str
    message: str


class ErrorOut(BaseModel):
    """Every 4xx/5xx body."""

    error: ErrorDetail
