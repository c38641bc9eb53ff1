"""Errors shared by every package.

Each carries a stable machine ``code`` and a human message. Domain code raises these (never
``HTTPException``); the HTTP status of a code, and what it means, are in the one error
catalogue (:mod:`correspondance.error_catalogue`), which ``api.errors`` reads.
"""

from __future__ import annotations

from typing import ClassVar


class CorrespondanceError(Exception):
    """Base of all domain errors: a stable ``code`` plus a human message.

    ``status`` is ``None`` (the catalogue's status for the code) except for an error
    answered with another status its code's catalogue entry lists (``ErrorCode.also``).
    """

    code = "error"
    status: ClassVar[int | None] = None

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(CorrespondanceError, ValueError):
    """A city configuration or setting is invalid."""

    code = "invalid_config"


class UnknownCityError(CorrespondanceError, LookupError):
    """No city with that id is configured."""

    code = "unknown_city"


class TripNotFoundError(CorrespondanceError, LookupError):
    """No such trip: a live trip that ended, expired, was deleted or never was
    (``realtime.trips``), or the transit trip a traveller is said to be aboard, which does
    not run then (``routing.state``)."""

    code = "trip_not_found"


class InputError(CorrespondanceError, ValueError):
    """A request parameter is malformed or out of range."""

    code = "invalid_parameter"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message, code=code)
        self.field = field
