"""Errors of report intake: why a report was refused, and floods answered with 429.

Each carries a stable machine ``code``; its HTTP status is in the error catalogue
(``correspondance.error_catalogue``: ``invalid_report`` 400, the other rejections 422,
``rate_limited`` 429).
"""

from __future__ import annotations

from correspondance.errors import CorrespondanceError

REJECTION_CODES = frozenset(
    {
        "invalid_report",
        "outside_city",
        "no_street_nearby",
        "report_in_future",
        "report_too_old",
        "implausible_sequence",
        "duplicate_report",
    }
)
"""Every code :class:`ReportRejectedError` may carry."""


class ReportRejectedError(CorrespondanceError, ValueError):
    """A report was refused; ``code`` says why (one of :data:`REJECTION_CODES`).

    ``duplicate_report`` is not a fault of the client: an exact duplicate is simply ignored
    (the API may answer 200 with ``"duplicate": true``).

    Parameters
    ----------
    message : str
        Human explanation; for ``invalid_report`` it names every offending field.
    code : str, default "invalid_report"
        Machine code.
    fields : tuple of str, optional
        The offending fields (``invalid_report`` only), e.g. ``("level", "X-Contributor-Token")``.

    Raises
    ------
    ValueError
        If ``code`` is not one of :data:`REJECTION_CODES` (a programming error).
    """

    code = "invalid_report"

    def __init__(
        self, message: str, *, code: str = "invalid_report", fields: tuple[str, ...] = ()
    ) -> None:
        if code not in REJECTION_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(message, code=code)
        self.fields = fields


class RateLimitedError(CorrespondanceError):
    """Too many reports: try again after ``retry_after_s`` seconds (HTTP 429 + Retry-After).

    Parameters
    ----------
    message : str
        Which limit was hit (never the address or the token).
    retry_after_s : int
        Whole seconds until the limit's window ends (at least 1).
    """

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class UnknownReportError(CorrespondanceError, LookupError):
    """A contributor asked for a report of theirs that is not kept (never was, expired or
    deleted)."""

    code = "unknown_report"
