"""API response models (pydantic at the edge)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from routing.wire import AlertOut, ItineraryOut, LegOut, LineString, PlaceOut, leg_alerts

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
