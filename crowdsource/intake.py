"""The intake pipeline of one report: validated body → checked, matched :class:`Report`.

Stages, each callable alone: :func:`crowdsource.models.parse_report` (shape) →
:func:`check_report` (city, time) → :func:`crowdsource.matching.match_report` (edges) →
:class:`crowdsource.abuse.AbuseGuard` → :meth:`crowdsource.repository.ReportRepository.add`.
:func:`prepare_report` runs the pure middle stages.
"""

from __future__ import annotations

import uuid

from correspondance import bounds
from correspondance.cities import CityConfig
from crowdsource.errors import ReportRejectedError
from crowdsource.matching import MAX_MATCH_M, match_report
from crowdsource.models import Report, ReportIn
from routing.streets import StreetNetwork

MAX_REPORT_AGE_S = 3_600.0
FUTURE_SLACK_S = 120.0  # device clocks drift


def check_report(
    report: ReportIn,
    city: CityConfig,
    now: float,
    max_age_s: float = MAX_REPORT_AGE_S,
    future_slack_s: float = FUTURE_SLACK_S,
) -> float:
    """Check a report's place and time; return its ``observed_at`` in unix seconds.

    Parameters
    ----------
    report : ReportIn
        The validated body.
    city : CityConfig
        The city it is sent to.
    now : float
        Server time, unix seconds (used when ``observed_at`` is absent).
    max_age_s : float, default 3600
        Oldest accepted observation (a batch from an offline client may lag).
    future_slack_s : float, default 120
        Clock drift tolerated on the device.

    Returns
    -------
    float
        When it was observed.

    Raises
    ------
    ReportRejectedError
        ``outside_city``, ``report_in_future`` or ``report_too_old``.
    """
    if not city.contains(report.lat, report.lon):
        raise ReportRejectedError(
            f"{report.lat:.5f},{report.lon:.5f} is outside {city.name}", code="outside_city"
        )
    # read without datetime arithmetic: any year 1..9999 with any offset is a number here,
    # so the two checks below refuse it (report_too_old / report_in_future) without overflow
    at = report.observed_at
    observed = bounds.unix_seconds(at) if at is not None else now
    if observed > now + future_slack_s:
        raise ReportRejectedError(
            f"observed_at is {observed - now:.0f} s in the future", code="report_in_future"
        )
    if observed < now - max_age_s:
        raise ReportRejectedError(
            f"observed_at is {now - observed:.0f} s old (at most {max_age_s:.0f} s)",
            code="report_too_old",
        )
    return observed


def prepare_report(
    report: ReportIn,
    *,
    contributor: str,
    origin: str | None,
    city: CityConfig,
    drive: StreetNetwork,
    now: float,
    max_age_s: float = MAX_REPORT_AGE_S,
    max_match_m: float = MAX_MATCH_M,
) -> Report:
    """Check and match one validated report into the form that is stored.

    Parameters
    ----------
    report : ReportIn
        The validated body.
    contributor : str
        :func:`crowdsource.tokens.contributor_key` of the token.
    origin : str or None
        :func:`crowdsource.tokens.address_key` of the client address.
    city : CityConfig
        The city.
    drive : StreetNetwork
        The city's drive network.
    now : float
        Server time, unix seconds (also ``received_at``).
    max_age_s : float, default 3600
        Oldest accepted observation.
    max_match_m : float, default 60
        Farthest a street may be.

    Returns
    -------
    Report
        With a fresh random ``report_id`` and its matched edges.

    Raises
    ------
    ReportRejectedError
        ``outside_city``, ``report_in_future``, ``report_too_old`` or ``no_street_nearby``.
    """
    observed = check_report(report, city, now, max_age_s)
    edges = match_report(drive, report.lat, report.lon, report.heading, max_match_m)
    return Report(
        report_id=uuid.uuid4().hex,
        contributor=contributor,
        lat=report.lat,
        lon=report.lon,
        kind=report.kind,
        level=report.level,
        heading=report.heading,
        mode=report.mode,
        observed_at=observed,
        received_at=now,
        edge_ids=edges,
        city=city.id,
        origin=origin,
    )
