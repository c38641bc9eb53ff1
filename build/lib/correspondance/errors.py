"""Errors shared by every package.

Each carries a stable machine ``code`` that the API maps to an HTTP status, and a human
message. Domain code raises these (never ``HTTPException``); ``api.errors`` translates.
"""

from __future__ import annotations


class CorrespondanceError(Exception):
    """Base of all domain errors: a stable ``code`` plus a human message."""

    code = "error"

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


class InputError(CorrespondanceError, ValueError):
    """A request parameter is malformed or out of range."""

    code = "invalid_parameter"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message, code=code)
        self.field = field
