"""Errors raised while reading feeds: each names the file and every problem found."""

from __future__ import annotations

from correspondance.errors import CorrespondanceError


class FeedError(CorrespondanceError, ValueError):
    """A feed file is missing, unreadable or invalid."""

    code = "invalid_feed"


class FeedValidationError(FeedError):
    """A feed parsed but failed validation; ``problems`` lists every one found."""

    code = "feed_validation_failed"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n  - ".join(problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n  - {listed}")
