"""The trip engine's due times (:class:`realtime.trips.scheduler.DueTimes`), without a store."""

from __future__ import annotations

import math

from realtime.trips.scheduler import SWEEP_PERIOD_S, DueTimes


def test_trips_come_due_most_overdue_first_and_once() -> None:
    due = DueTimes()
    due.set("b", 20.0)
    due.set("a", 10.0)
    due.set("c", 30.0)
    assert due.due_by(5.0) == []
    assert due.due_by(25.0) == ["a", "b"]
    assert due.due_by(25.0) == []  # popped: due again only once rescheduled
    assert due.get("c") == 30.0
    assert len(due) == 1


def test_a_rescheduled_trip_is_due_at_its_latest_time_only() -> None:
    due = DueTimes()
    due.set("a", 10.0)
    due.set("a", 50.0)  # moved later: the stale entry at 10 is skipped
    assert due.due_by(20.0) == []
    due.set("a", 40.0, earlier_only=True)
    due.set("a", 45.0, earlier_only=True)  # not earlier than 40: kept at 40
    assert due.get("a") == 40.0
    assert due.due_by(41.0) == ["a"]


def test_a_forgotten_trip_or_a_time_that_is_not_finite_never_comes_due() -> None:
    due = DueTimes()
    due.set("a", 10.0)
    due.discard("a")
    due.set("b", math.nan)
    due.set("c", math.inf)
    assert due.due_by(1e18) == []
    assert len(due) == 0


def test_stale_entries_do_not_pile_up() -> None:
    due = DueTimes()
    for i in range(1000):  # one trip rescheduled 1000 times
        due.set("a", 1000.0 + i)
    due.due_by(0.0)  # mostly stale: the heap is rebuilt from the live due times
    assert len(due._heap) == 1
    assert due.due_by(5000.0) == ["a"]


def test_the_sweep_covers_every_trip_once_per_period() -> None:
    due = DueTimes()
    trips = [f"t{i}" for i in range(10)]
    tick_s = SWEEP_PERIOD_S / 5  # five ticks per period: two trips per tick
    seen = [t for _ in range(5) for t in due.sweep_slice(trips, tick_s)]
    assert sorted(seen) == sorted(trips)
    assert due.sweep_slice([], tick_s) == []
