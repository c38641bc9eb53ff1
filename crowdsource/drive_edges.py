"""What every operator decision checks: a drive edge exists, and its opposite direction;
a congestion level and a decision's lifetime are in range. Shared by
:mod:`crowdsource.incidents` and :mod:`crowdsource.operators`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from correspondance.errors import CorrespondanceError, InputError

if TYPE_CHECKING:
    from routing.streets import StreetNetwork

DEFAULT_DECISION_TTL_S = 3600
MAX_DECISION_TTL_S = 7 * 86_400
MIN_DECISION_TTL_S = 60


class UnknownEdgeError(CorrespondanceError, LookupError):
    """An edge id that the city's drive network does not have."""

    code = "unknown_edge"


def check_edge(drive: StreetNetwork, edge: int) -> None:
    """Refuse an edge id the drive network does not have.

    Raises
    ------
    UnknownEdgeError
        If ``edge`` is not in ``0 .. n_edges - 1``.
    """
    if not 0 <= edge < drive.n_edges:
        raise UnknownEdgeError(
            f"unknown drive edge {edge}; this city's edges are 0..{drive.n_edges - 1}"
        )


def opposite_edges(drive: StreetNetwork, edge: int) -> list[int]:
    """Edges of the same OSM way running the other way along ``edge`` (two-way streets).

    Parameters
    ----------
    drive : StreetNetwork
        The drive network.
    edge : int
        An edge id.

    Returns
    -------
    list of int
        Zero or more edge ids.
    """
    tail, head = int(drive.tail[edge]), int(drive.head[edge])
    out = range(int(drive.indptr[head]), int(drive.indptr[head + 1]))
    return [
        e
        for e in out
        if int(drive.head[e]) == tail and drive.way_id[e] == drive.way_id[edge] and e != edge
    ]


def check_level(level: int | None) -> None:
    if level is not None and not 1 <= level <= 4:
        raise InputError(f"'level' must be 1–4, got {level}", field="level")


def check_ttl(expires_in_s: int) -> None:
    if not MIN_DECISION_TTL_S <= expires_in_s <= MAX_DECISION_TTL_S:
        raise InputError(
            f"'expires_in_s' must be {MIN_DECISION_TTL_S}–{MAX_DECISION_TTL_S}, got {expires_in_s}",
            field="expires_in_s",
        )


def encode_record(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()
