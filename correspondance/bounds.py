"""The bounds every request value is checked against, in one place.

Plan, trip and report routes (and the websocket protocol) read client values through
these helpers, so a value far outside what the service can mean is refused at the edge
with a clear ``400`` instead of overflowing somewhere deep inside (``datetime`` arithmetic
past year 9999, ``int64`` conversion of ``1e30``, ``NaN`` written to the store and then
sent to every client as invalid JSON).

Dates and times
    A plan's ``depart`` and a followed itinerary's times must lie within the city's feeds'
    service window (first to last service date of its GTFS feeds) widened by
    :data:`SERVICE_MARGIN` (366 days) on both sides. Within it, plans outside the service
    days themselves are still answered (walking, driving; transit says ``no_service``).
    Report times are relative to the server clock instead (``report_too_old``,
    ``report_in_future``); :func:`unix_seconds` reads them without overflowing.
Numbers
    Finite, and inside the range of the field (coordinates in degrees, edge ids below
    :data:`MAX_INDEX`). JSON from clients is parsed with :func:`loads`, which refuses
    ``NaN``/``Infinity`` (Python's ``json`` accepts them) and nesting deeper than
    :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

from correspondance.errors import InputError

SERVICE_MARGIN = dt.timedelta(days=366)
"""How far outside the feeds' service window a plan or trip may be dated."""
MAX_INDEX = 2**31 - 1
"""Largest edge, stop or sequence index a client may name (arrays are far smaller)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of client JSON (an itinerary is 5 levels deep)."""
MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer client JSON may hold: every client (JavaScript) reads it exactly."""
_EPOCH = dt.datetime(1970, 1, 1)
_SLACK = dt.timedelta(days=2)  # more than any UTC offset: a coarse check that cannot overflow


class OutOfRangeError(InputError):
    """A request value is well formed but outside what the service accepts."""

    code = "out_of_range"


class NonFiniteNumberError(InputError):
    """A request holds ``NaN``, ``Infinity`` or ``-Infinity``."""

    code = "non_finite_number"


class JsonTooDeepError(InputError):
    """Client JSON nested deeper than :data:`MAX_JSON_DEPTH`."""

    code = "json_too_deep"


def service_window(
    validity: tuple[dt.date, dt.date], margin: dt.timedelta = SERVICE_MARGIN
) -> tuple[dt.datetime, dt.datetime]:
    """The aware (UTC) span a plan or trip may be dated in.

    Parameters
    ----------
    validity : (date, date)
        First and last service date of the city's feeds.
    margin : timedelta
        Added on both sides.

    Returns
    -------
    (datetime, datetime)
        Start and end, in UTC.
    """
    first, last = validity
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC) - margin
    end = dt.datetime.combine(last, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1) + margin
    return start, end


def unix_seconds(value: dt.datetime) -> float:
    """Unix seconds of an aware datetime, for any year 1 to 9999.

    ``datetime.timestamp()`` converts to UTC first and overflows for
    ``0001-01-01T00:00:00+14:00`` or ``9999-12-31T23:59:59-12:00``; this does not.

    Raises
    ------
    ValueError
        If ``value`` is naive.
    """
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a naive datetime has no unix time")
    return (value.replace(tzinfo=None) - _EPOCH).total_seconds() - offset.total_seconds()


def check_datetime(
    value: dt.datetime, window: tuple[dt.datetime, dt.datetime], field: str
) -> dt.datetime:
    """``value`` if it lies inside ``window`` (both aware).

    Raises
    ------
    OutOfRangeError
        Naming the field and the window.
    """
    start, end = window
    naive = value.replace(tzinfo=None)
    inside = (
        start.replace(tzinfo=None) - _SLACK <= naive <= end.replace(tzinfo=None) + _SLACK
        and value.utcoffset() is not None
        and unix_seconds(start) <= unix_seconds(value) <= unix_seconds(end)
    )
    if not inside:
        raise OutOfRangeError(
            f"'{field}' {value.isoformat()} is outside the feeds' service window "
            f"({start.date().isoformat()} to {end.date().isoformat()}, "
            f"{SERVICE_MARGIN.days} days either side of the service dates included)",
            field=field,
        )
    return value


def parse_datetime(
    text: str, field: str, tz: dt.tzinfo, window: tuple[dt.datetime, dt.datetime]
) -> dt.datetime:
    """ISO 8601 → aware datetime inside ``window``; a naive time is local to ``tz``.

    Raises
    ------
    InputError
        ``invalid_parameter`` if it is not an ISO 8601 date-time; ``out_of_range`` if it is
        outside the window.
    """
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"'{field}' must be an ISO 8601 date-time such as 2019-05-15T13:00:00, got {text!r}",
            field=field,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return check_datetime(value, window, field)


def check_number(value: float, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` if it is finite and within [low, high].

    Raises
    ------
    NonFiniteNumberError, OutOfRangeError
    """
    if not math.isfinite(value):
        raise NonFiniteNumberError(f"'{field}' must be a finite number, got {value!r}", field=field)
    if not low <= value <= high:
        raise OutOfRangeError(f"'{field}' must be within [{low:g}, {high:g}]", field=field)
    return value


def check_index(value: int, field: str, size: int = MAX_INDEX + 1) -> int:
    """``value`` if it is an int in ``[0, size)`` (and never past :data:`MAX_INDEX`).

    Raises
    ------
    OutOfRangeError
    """
    limit = min(size, MAX_INDEX + 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise OutOfRangeError(f"'{field}' must be a whole number in [0, {limit})", field=field)
    return value


def _walk(document: Any, path: str) -> Iterator[tuple[str, Any, int]]:
    """(path, value, depth) of every value in a JSON document, without recursion."""
    stack: list[tuple[str, Any, int]] = [(path, document, 1)]
    while stack:
        where, value, depth = stack.pop()
        yield where, value, depth
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}.{i}", v, depth + 1) for i, v in enumerate(value))


def check_json_values(document: Any, field: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a decoded JSON document holding non-finite numbers, integers past
    :data:`MAX_SAFE_INTEGER`, or nesting deeper than ``max_depth``.

    Raises
    ------
    NonFiniteNumberError, OutOfRangeError, JsonTooDeepError
        Naming the first offending path.
    """
    for where, value, depth in _walk(document, field):
        if depth > max_depth:
            raise JsonTooDeepError(f"'{field}' is nested deeper than {max_depth}", field=field)
        if isinstance(value, float) and not math.isfinite(value):
            raise NonFiniteNumberError(
                f"'{where}' must be a finite number, got {value!r}", field=where
            )
        if isinstance(value, int) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise OutOfRangeError(
                f"'{where}' must be an integer within ±{MAX_SAFE_INTEGER}", field=where
            )


def _refuse_constant(name: str) -> Any:
    raise NonFiniteNumberError(f"JSON numbers must be finite, got {name}")


def loads(
    text: str | bytes, field: str = "body", max_depth: int = MAX_JSON_DEPTH, walk: bool = True
) -> Any:
    """Parse client JSON: ``NaN``/``Infinity`` and too deep nesting are refused.

    ``walk=False`` skips the pass over every value (depth, numbers too large for a float
    such as ``1e400``) for large trusted-shape documents read often, leaving only what the
    parser itself refuses (``NaN``, ``Infinity``, nesting past the interpreter's stack).

    Raises
    ------
    InputError
        ``invalid_parameter`` if it is not JSON; ``non_finite_number``; ``json_too_deep``.
    """
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # deeper than the interpreter's stack: certainly too deep
        raise JsonTooDeepError(f"'{field}' is nested deeper than {max_depth}") from None
    except InputError:
        raise
    except ValueError:
        raise InputError(f"'{field}' is not valid JSON", field=field) from None
    if walk:
        check_json_values(document, field, max_depth)
    return document
