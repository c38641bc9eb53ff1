"""Routing errors, each with a stable code (its HTTP status: ``correspondance.error_catalogue``)."""

from __future__ import annotations

from correspondance.errors import CorrespondanceError


class RoutingError(CorrespondanceError):
    """Base of routing errors."""

    code = "routing_error"


class OutsideCityError(RoutingError, ValueError):
    """A coordinate lies outside the city's bounding box."""

    code = "outside_city"


class NoStreetNearbyError(RoutingError, ValueError):
    """No street of the needed mode lies within the snapping distance of a coordinate."""

    code = "no_street_nearby"


class NoServiceError(RoutingError, ValueError):
    """The requested date is outside every feed's service period."""

    code = "date_out_of_service"


class UnknownStopError(RoutingError, LookupError):
    """A stop_id is not in the timetable."""

    code = "unknown_stop"


class BuildError(RoutingError, RuntimeError):
    """The city base could not be built or loaded."""

    code = "build_failed"
