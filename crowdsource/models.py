"""Report models: ``ReportIn`` / ``BatchIn`` at the API edge, the frozen ``Report`` inside.

``ReportIn`` is what a client may send, validated strictly (unknown fields, NaN, out-of-range
values and wrong types are refused, every problem named at once). ``Report`` is what is
kept: the contributor only as a keyed hash, times as unix seconds, the matched drive edges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from crowdsource.errors import ReportRejectedError

Kind = Literal["congestion", "closure", "incident", "clear"]
Mode = Literal["car", "bus", "bike"]
KINDS: tuple[str, ...] = ("congestion", "closure", "incident", "clear")
MAX_BATCH = 100
MAX_BODY_BYTES = 64 * 1024  # a full batch is ~20 kB; anything far larger is not a report body

_Lat = Annotated[float, Field(strict=True, ge=-90.0, le=90.0)]
_Lon = Annotated[float, Field(strict=True, ge=-180.0, le=180.0)]


class ReportIn(BaseModel):
    """One report as a client sends it (``POST /api/v1/reports``).

    Attributes
    ----------
    lat, lon : float
        WGS84 position (numbers; strings are refused).
    kind : {"congestion", "closure", "incident", "clear"}
        What the contributor sees.
    level : int, optional
        Congestion level 1 (slow) to 4 (standstill); required for ``congestion`` and refused
        for every other kind.
    heading : float, optional
        Direction of travel in degrees clockwise from north, 0 to 360.
    mode : {"car", "bus", "bike"}, optional
        How the contributor travels.
    observed_at : datetime, optional
        When it was seen, timezone-aware (ISO 8601 with offset); server time if absent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lat: _Lat
    lon: _Lon
    kind: Kind
    level: Annotated[int, Field(strict=True, ge=1, le=4)] | None = None
    heading: Annotated[float, Field(strict=True, ge=0.0, le=360.0)] | None = None
    mode: Mode | None = None
    observed_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _level_iff_congestion(self) -> ReportIn:
        if self.kind == "congestion" and self.level is None:
            raise ValueError("level: required (1-4) when kind is congestion")
        if self.kind != "congestion" and self.level is not None:
            raise ValueError(f"level: only congestion reports carry a level, not {self.kind}")
        return self


class BatchIn(BaseModel):
    """Several reports at once, for clients that were offline (1 to 100)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reports: list[ReportIn] = Field(min_length=1, max_length=MAX_BATCH)


def _field_of(error: Mapping[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", ""))
    if not location and ":" in message:
        # model-level rules name their field first ("level: required ...")
        location = [message.split(":", 1)[0].removeprefix("Value error, ")]
    return ".".join(location) or "body"


def _rejection(exc: ValidationError) -> ReportRejectedError:
    errors = exc.errors(include_url=False, include_input=False)
    fields = tuple(dict.fromkeys(_field_of(e) for e in errors))
    details = "; ".join(f"{_field_of(e)}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
    return ReportRejectedError(f"invalid report: {details}", fields=fields)


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Mapping[str, Any] | bytes | str) -> M:
    """``data`` validated as ``model``; a body over the size limit is refused unread."""
    try:
        if isinstance(data, bytes | str):
            if len(data) > MAX_BODY_BYTES:
                raise ReportRejectedError("invalid report: body: too large", fields=("body",))
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise _rejection(exc) from None


def parse_report(data: Mapping[str, Any] | bytes | str) -> ReportIn:
    """Validate one report body.

    Parameters
    ----------
    data : mapping, bytes or str
        Decoded JSON object, or the raw JSON body.

    Returns
    -------
    ReportIn
        The validated report.

    Raises
    ------
    ReportRejectedError
        ``invalid_report`` naming every offending field (``lat``, ``level``, ...).
    """
    return _parse(ReportIn, data)


def parse_batch(data: Mapping[str, Any] | bytes | str) -> BatchIn:
    """Validate a batch body ``{"reports": [...]}``.

    Parameters
    ----------
    data : mapping, bytes or str
        Decoded JSON object, or the raw JSON body.

    Returns
    -------
    BatchIn
        The validated batch.

    Raises
    ------
    ReportRejectedError
        ``invalid_report`` naming every offending field (``reports.3.level``, ...).
    """
    return _parse(BatchIn, data)


@dataclass(frozen=True)
class Report:
    """A report as kept: no token, no address, the contributor only as a keyed hash.

    Attributes
    ----------
    report_id : str
        Random id (32 hex digits), unrelated to the contributor.
    contributor : str
        :func:`crowdsource.tokens.contributor_key` of the token.
    lat, lon : float
        Where it was reported.
    kind : str
        ``congestion``, ``closure``, ``incident`` or ``clear``.
    level : int or None
        1-4 for congestion, else None.
    heading : float or None
        Degrees clockwise from north.
    mode : str or None
        ``car``, ``bus`` or ``bike``.
    observed_at : float
        Unix seconds when it was seen.
    received_at : float
        Unix seconds when the server accepted it.
    edge_ids : tuple of int
        Drive edges it describes (one direction, or both of a two-way street).
    city : str
        City id.
    origin : str or None
        Keyed hash of the client's network (:func:`crowdsource.tokens.address_key`), used only
        to count distinct networks during fusion. It is never written with the report
        itself: the repository keeps it in the short-lived pending index only, and it is
        ``None`` on reports read back from long-term storage.
    """

    report_id: str
    contributor: str
    lat: float
    lon: float
    kind: str
    level: int | None
    heading: float | None
    mode: str | None
    observed_at: float
    received_at: float
    edge_ids: tuple[int, ...]
    city: str
    origin: str | None = None

    def to_dict(self, *, with_origin: bool = False) -> dict[str, Any]:
        """JSON-compatible form; without ``origin`` unless asked (the stored form).

        Parameters
        ----------
        with_origin : bool, default False
            Include the network hash (pending index only).

        Returns
        -------
        dict
            Fields and values; ``edge_ids`` as a list.
        """
        # by hand rather than dataclasses.asdict (a recursive deep copy): ~10x faster, and
        # this runs for every report taken in; same keys, same order
        data: dict[str, Any] = {
            "report_id": self.report_id,
            "contributor": self.contributor,
            "lat": self.lat,
            "lon": self.lon,
            "kind": self.kind,
            "level": self.level,
            "heading": self.heading,
            "mode": self.mode,
            "observed_at": self.observed_at,
            "received_at": self.received_at,
            "edge_ids": list(self.edge_ids),
            "city": self.city,
        }
        if with_origin:
            data["origin"] = self.origin
        return data

    def to_json(self, *, with_origin: bool = False) -> bytes:
        """Compact JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(with_origin=with_origin), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Report:
        """Read back what :meth:`to_json` wrote.

        Parameters
        ----------
        raw : bytes or str
            The JSON.

        Returns
        -------
        Report
            The report.
        """
        data = json.loads(raw)
        data["edge_ids"] = tuple(int(e) for e in data["edge_ids"])
        return cls(**data)

    @classmethod
    def many_from_json(cls, raws: Sequence[bytes]) -> list[Report]:
        """Read back many :meth:`to_json` outputs at once, as :meth:`from_json` each would.

        One ``json.loads`` over them all, and reports built without the dataclass
        constructor when their fields are exactly the expected ones: the fuser reads
        thousands of reports every second, and this is ~4x cheaper than one by one.

        Parameters
        ----------
        raws : sequence of bytes
            JSON objects, each as :meth:`to_json` wrote it.

        Returns
        -------
        list of Report
            In the order given.

        Raises
        ------
        ValueError, TypeError, KeyError
            As :meth:`from_json` on a malformed value.
        """
        if not raws:
            return []
        try:
            rows = json.loads(b"[" + b",".join(raws) + b"]")
        except ValueError:
            rows = None
        if not isinstance(rows, list) or len(rows) != len(raws):
            # some value is not one JSON object: let from_json name what is wrong
            return [cls.from_json(raw) for raw in raws]
        new = object.__new__
        out: list[Report] = []
        append = out.append
        for data in rows:
            if not isinstance(data, dict):
                raise TypeError(f"a report is a JSON object, not {type(data).__name__}")
            keys = data.keys()
            if keys == _STORED_FIELDS:
                data["origin"] = None
            elif keys != _ALL_FIELDS:
                data["edge_ids"] = tuple(int(e) for e in data["edge_ids"])
                append(cls(**data))  # raises on missing or unknown fields, as from_json
                continue
            data["edge_ids"] = tuple(map(int, data["edge_ids"]))
            report = new(cls)
            # a frozen dataclass without __post_init__: its instance dict is its fields
            report.__dict__.update(data)
            append(report)
        return out


_ALL_FIELDS = frozenset(f.name for f in fields(Report))
_STORED_FIELDS = _ALL_FIELDS - {"origin"}


def unix(moment: datetime) -> float:
    """Unix seconds of an aware datetime."""
    return moment.timestamp()
