"""When a better way is worth interrupting a traveller for: thresholds and hysteresis."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class SwitchPolicy:
    """Suggest only what is clearly better, and do not flip-flop.

    A new plan is suggested when it arrives at least ``min_saving_s`` earlier *and* at least
    ``min_fraction`` of the remaining time earlier, or when the current plan broke. After a
    suggestion was declined or withdrawn, the next must save ``hysteresis_s`` more than it
    did. An open suggestion is withdrawn only when its saving falls below half the
    threshold, so a saving hovering around the threshold does not open and close cards.
    """

    min_saving_s: float = 180.0
    min_fraction: float = 0.10
    hysteresis_s: float = 180.0
    replan_when_late_s: float = 120.0  # replan only plans that lost at least this much

    def needed(
        self, now: dt.datetime, projected: dt.datetime, closed_saving_s: float | None
    ) -> float:
        """Seconds a new plan must save over ``projected`` to be suggested."""
        remaining = max((projected - now).total_seconds(), 0.0)
        need = max(self.min_saving_s, self.min_fraction * remaining)
        if closed_saving_s is not None:
            need = max(need, closed_saving_s + self.hysteresis_s)
        return need

    def worth_suggesting(
        self,
        now: dt.datetime,
        projected: dt.datetime | None,
        new_arrival: dt.datetime,
        closed_saving_s: float | None,
    ) -> bool:
        """Whether a plan arriving at ``new_arrival`` is worth a suggestion."""
        if projected is None:  # the current plan broke: any working plan is worth it
            return True
        saving = (projected - new_arrival).total_seconds()
        return saving >= self.needed(now, projected, closed_saving_s)

    def still_worth_it(self, saving_s: float | None) -> bool:
        """Whether an open suggestion saving ``saving_s`` (None: plan broken) stays open."""
        return saving_s is None or saving_s >= self.min_saving_s / 2
