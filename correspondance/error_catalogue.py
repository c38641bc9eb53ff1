"""The error catalogue: every machine code an error can carry, its HTTP status and meaning.

One table, as Valhalla keeps one (a stable code → HTTP status and message): an error
class, or a ``raise ...(code=...)``, names a code; the status it is answered with comes
from here and from nowhere else (``api.errors`` looks it up). Each code has a *reach*:

``http``
    Sent as an HTTP error ``{"error": {"code", "message"}}`` with :attr:`ErrorCode.status`
    (many are also sent in a websocket ``error`` message; ``docs/protocol.md``).
``websocket``
    Only ever sent in a websocket ``error`` message: it has no HTTP status.
``internal``
    Never sent: it names a failure of the server or of its inputs (a feed, the store, the
    city configuration). An HTTP request that meets one is answered ``500
    internal_error`` and the error is logged with its traceback.
``reserved``
    Part of the API (clients may meet it in documents or future versions) but nothing
    raises it today; answered with its status if something ever does.

An error whose code is not here is a bug: the API answers it ``500 internal_error`` and
logs it, never a guessed 4xx. ``tests/api/test_errors_catalogue.py`` scans the product code
for every code that can be raised or sent and checks it is here, that nothing here is
unused (unless reserved), and that README.md's "Errors" table is :func:`markdown_table`.
Regenerate that table with ``python -m correspondance.error_catalogue --write README.md``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType


class Reach(StrEnum):
    """Where an error code can travel (see the module docstring)."""

    HTTP = "http"
    WEBSOCKET = "websocket"
    INTERNAL = "internal"
    RESERVED = "reserved"


INTERNAL_STATUS = 500
"""The status of every internal code (answered as ``internal_error``)."""


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One code of the catalogue.

    Attributes
    ----------
    code : str
        The stable machine code (snake_case ASCII).
    status : int or None
        The HTTP status it is answered with; ``None`` for a websocket-only code; 500 for an
        internal one (sent as ``internal_error``).
    meaning : str
        One line: what happened, for a client developer.
    reach : Reach
        Where it travels.
    also : tuple of (int, str)
        Other statuses the code is answered with, each with when: an error class that is
        answered with one of them names it in its ``status`` attribute.
    """

    code: str
    status: int | None
    meaning: str
    reach: Reach = Reach.HTTP
    also: tuple[tuple[int, str], ...] = ()

    def statuses(self) -> tuple[int, ...]:
        """Every HTTP status this code may be answered with (none if websocket-only)."""
        first = () if self.status is None else (self.status,)
        return first + tuple(status for status, _ in self.also)


def _http(code: str, status: int, meaning: str, *also: tuple[int, str]) -> ErrorCode:
    return ErrorCode(code, status, meaning, Reach.HTTP, also)


def _websocket(code: str, meaning: str) -> ErrorCode:
    return ErrorCode(code, None, meaning, Reach.WEBSOCKET)


def _internal(code: str, meaning: str) -> ErrorCode:
    return ErrorCode(code, INTERNAL_STATUS, meaning, Reach.INTERNAL)


def _reserved(code: str, status: int, meaning: str) -> ErrorCode:
    return ErrorCode(code, status, meaning, Reach.RESERVED)


_ENTRIES = (
    # -- the request itself -------------------------------------------------------------------
    _http("bad_request", 400, "the HTTP request is malformed (refused by the server's parser)"),
    _http("headers_too_large", 431, "the request line and headers exceed the header limit"),
    _http("body_too_large", 413, "the request body exceeds the body size limit (1 MiB)"),
    _http("too_deep", 400, "the request body's JSON nests deeper than the limit (32 levels)"),
    _http("not_found", 404, "no such path, or that page or document is not installed"),
    _http(
        "method_not_allowed",
        405,
        "the path does not take this method (`Allow` names those it does)",
    ),
    _http(
        "http_error",
        400,
        "another refusal by the web framework, with its own status (400: an unreadable body)",
    ),
    _http("forbidden", 403, "a websocket the server refused before its handshake"),
    _http("internal_error", 500, "an unexpected server error; it was logged"),
    _http(
        "store_unavailable",
        503,
        "the shared store is unreachable: retry after `Retry-After` seconds "
        "(websockets: closed with 4503)",
    ),
    # -- request values ----------------------------------------------------------------------
    _http(
        "invalid_parameter",
        400,
        "a parameter or body field is missing, malformed or out of its range",
    ),
    _http(
        "unknown_parameter", 400, "a query parameter the route does not take (the message names it)"
    ),
    _http(
        "conflicting_parameters",
        400,
        "parameters that exclude each other (`depart`, `arrive`, `cursor`)",
    ),
    _http(
        "out_of_range",
        400,
        "a well-formed value outside what the service accepts (e.g. a date far outside the feeds)",
    ),
    _http("non_finite_number", 400, "`NaN` or `Infinity` in a request"),
    _http("json_too_deep", 400, "client JSON (an itinerary, a report) nests deeper than 32 levels"),
    _http("invalid_cursor", 400, "a page `cursor` this server did not make for this query"),
    _http("empty_query", 400, "a place search `q` without a letter or digit"),
    _http("query_too_long", 400, "a place search `q` with too many characters or words"),
    # -- cities and planning -----------------------------------------------------------------
    _http("unknown_city", 404, "no city with that id is served (websockets: closed with 4404)"),
    _http("unknown_stop", 404, "a `stop_id` that is not in the city's timetable"),
    _http("outside_city", 422, "a place (or a report) outside the city's area"),
    _http("no_street_nearby", 422, "no street of the needed mode near a place (or a report)"),
    _http("date_out_of_service", 422, "the date is outside every feed's service period"),
    # -- live trips ----------------------------------------------------------------------------
    _http(
        "invalid_itinerary",
        400,
        "the itinerary of a new trip is malformed or does not fit the city",
    ),
    _http(
        "trip_not_found",
        404,
        "no such live trip: it ended, expired, was deleted or never was (websockets: 4404)",
    ),
    _http(
        "unauthorized",
        401,
        "a missing, wrong or expired token: a trip's, or an operator's bearer token "
        "(websockets: 4401)",
    ),
    _http("demo_disabled", 404, "the demo routes are not enabled on this server"),
    _http("no_road_ahead", 400, "demo: the trip drives no further, so there is no road to close"),
    _websocket("invalid_message", "a client message that is not valid JSON text of the protocol"),
    _websocket("unknown_type", "a client message of a type the protocol does not have"),
    _websocket("unknown_suggestion", "`accept` or `decline` of a suggestion the trip never had"),
    _websocket("suggestion_closed", "`accept` or `decline` of a suggestion no longer open"),
    _websocket("trip_ended", "a command for a trip that has ended"),
    # -- reports -------------------------------------------------------------------------------
    _http(
        "invalid_report",
        400,
        "a malformed report or batch, or a bad contributor token (the message names each field)",
        (413, "the body is larger than any report or batch may be"),
    ),
    _http("report_in_future", 422, "a report observed more than the allowed drift in the future"),
    _http("report_too_old", 422, "a report observed too long ago to be used"),
    _http("implausible_sequence", 422, "a report impossible after the contributor's previous ones"),
    _reserved(
        "duplicate_report",
        422,
        'an exact duplicate report: never an error today (answered 200, `"duplicate": true`)',
    ),
    _http(
        "rate_limited",
        429,
        "too many requests: retry after `Retry-After` seconds (websockets: positions too often)",
    ),
    _http(
        "unknown_report", 404, "a report of the contributor's that is not kept (expired or deleted)"
    ),
    # -- operators -----------------------------------------------------------------------------
    _http("invalid_credentials", 401, "wrong operator username or password"),
    _http("too_many_attempts", 429, "too many failed logins: retry after `Retry-After` seconds"),
    _http("operator_exists", 409, "an operator account with that username exists"),
    _http("invalid_operator", 400, "a username or password that does not meet the rules"),
    _http("unknown_edge", 404, "an edge id that is not in the city's drive network"),
    _http(
        "unknown_incident", 404, "no incident in force has that id (ended, expired or never was)"
    ),
    # -- internal: never sent ------------------------------------------------------------------
    _internal("error", "a domain error that names no code of its own (a bug)"),
    _internal("invalid_config", "a city configuration, setting or operators file is invalid"),
    _internal("routing_error", "a routing failure with no more specific code"),
    _internal("build_failed", "the city's base could not be built or loaded"),
    _internal("operator_error", "an operator account failure with no more specific code"),
    _internal("store_error", "a store failure that no other store code names"),
    _internal("fenced_out", "a fenced write refused: its writer lost the lock"),
    _internal("store_wrong_type", "a store key holds another kind of value than expected"),
    _internal("events_lost", "events were trimmed before a subscriber read them"),
    _internal("invalid_feed", "a feed file is missing, unreadable or invalid"),
    _internal("feed_validation_failed", "a feed parsed but failed validation"),
    _internal("invalid_gtfsrt", "GTFS-Realtime bytes that are not a complete FeedMessage"),
    _internal("invalid_gbfs_document", "a GBFS document that does not match its schema"),
    _internal("unsupported_gbfs_version", "a GBFS feed of a version this server does not read"),
    _internal("feed_from_future", "a live feed stamped too far in the future"),
    _internal("feed_unreachable", "a live feed could not be fetched"),
    _internal("gtfsrt_rejected", "a GTFS-Realtime message the poller refused"),
    _internal("gbfs_rejected", "a GBFS snapshot the poller refused"),
)

CATALOGUE: Mapping[str, ErrorCode] = MappingProxyType({e.code: e for e in _ENTRIES})
"""Every code, by code, in the order of the README table."""
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - a typo in the table above
    raise RuntimeError("the error catalogue lists a code twice")


def http_status(code: str, declared: int | None = None) -> int | None:
    """The HTTP status an error with ``code`` is answered with.

    Parameters
    ----------
    code : str
        The error's code.
    declared : int, optional
        The status the error's class names (its ``status`` attribute), when it is not the
        code's usual one: it must be one of the entry's :meth:`ErrorCode.statuses`.

    Returns
    -------
    int or None
        ``None`` when the API must not send the code over HTTP — it is not in the
        catalogue, internal, websocket-only, or ``declared`` is not listed for it: the
        caller answers ``500 internal_error`` and logs the error.
    """
    entry = CATALOGUE.get(code)
    if entry is None or entry.reach in (Reach.INTERNAL, Reach.WEBSOCKET):
        return None
    if declared is None:
        return entry.status
    return declared if declared in entry.statuses() else None


# -- the README table ------------------------------------------------------------------------

BEGIN = (
    "<!-- error catalogue: begin (python -m correspondance.error_catalogue --write README.md) -->"
)
END = "<!-- error catalogue: end -->"


def _status_cell(entry: ErrorCode) -> str:
    if entry.reach is Reach.WEBSOCKET:
        return "— (websocket only)"
    if entry.reach is Reach.INTERNAL:
        return "500 as `internal_error`"
    cell = ", ".join(str(status) for status in entry.statuses())
    return f"{cell} (reserved)" if entry.reach is Reach.RESERVED else cell


def _meaning_cell(entry: ErrorCode) -> str:
    return "; ".join([entry.meaning, *(f"{status}: {when}" for status, when in entry.also)])


def markdown_table() -> str:
    """README.md's "Errors" table: code | HTTP status | meaning, one row per code."""
    rows = ["| code | HTTP status | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{e.code}` | {_status_cell(e)} | {_meaning_cell(e)} |" for e in CATALOGUE.values()]
    return "\n".join(rows) + "\n"


_SECTION = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.DOTALL)


def documented_table(text: str) -> str | None:
    """The table between the catalogue's markers in a document, or None without markers."""
    match = _SECTION.search(text)
    return match[0][len(BEGIN) + 1 : -len(END)] if match else None


def with_table(text: str) -> str:
    """``text`` with the table between the markers replaced by :func:`markdown_table`."""
    if documented_table(text) is None:
        raise ValueError(f"no error catalogue markers ({BEGIN} ... {END})")
    return _SECTION.sub(lambda _: f"{BEGIN}\n{markdown_table()}{END}", text, count=1)


def main(argv: list[str] | None = None) -> None:
    """Print the table, or write it into a document between its markers (``--write``)."""
    parser = argparse.ArgumentParser(prog="python -m correspondance.error_catalogue")
    parser.add_argument("--write", type=Path, metavar="FILE", help="e.g. README.md")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table(), end="")
        return
    path: Path = args.write
    path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
