"""When transit runs: per calendar day, the hours with service, from the GTFS calendar.

The app marks dates and hours without service in its date choice and, when a plan finds no
transit, says why and offers the next time with service. A day's service is what runs on it
by the clock: that day's trips (calendar.txt + calendar_dates.txt) in their first 24 hours, and
the previous day's trips still running after midnight (GTFS times past 24:00:00).

Times are GTFS seconds after the service day's "noon minus 12 h", which is local midnight
except on the two daylight-saving days of a year (an hour off there, for this summary only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from routing.timetable import BaseTimetable

HOURS = 48  # a service day's trips may run until past 47:59 in theory; later ones are clipped


@dataclass(frozen=True)
class ServiceDay:
    """Transit service on one calendar date."""

    date: dt.date
    trips: int  # trips of this date's own services
    hours: tuple[int, ...]  # local hours (0–23) in which some trip runs
    first_departure_s: int | None  # earliest first departure of this date's trips
    last_departure_s: int | None  # latest first departure of this date's trips
    modes: dict[str, tuple[int, ...]]  # per transit mode ("bus", "rail"...): its hours, if any


@dataclass(frozen=True)
class _Coverage:
    """Per service key: trips running in each hour of its service day, trip count, first and
    last departures."""

    running: NDArray[np.int64]  # (n_services, HOURS)
    by_mode: NDArray[np.int64]  # (n_services, n_modes, HOURS)
    modes: tuple[str, ...]
    trips: NDArray[np.int64]
    first_s: NDArray[np.int64]
    last_s: NDArray[np.int64]


@lru_cache(maxsize=8)
def _coverage(tt: BaseTimetable) -> _Coverage:
    n = len(tt.service_keys)
    off = tt.trip_time_off
    start = tt.trip_dep[off[:-1]]
    end = tt.trip_arr[off[1:] - 1]
    h0 = np.clip(start // 3600, 0, HOURS - 1)
    h1 = np.clip(end // 3600, 0, HOURS - 1)
    diff = np.zeros((n, HOURS + 1), np.int64)
    np.add.at(diff, (tt.trip_service, h0), 1)
    np.add.at(diff, (tt.trip_service, h1 + 1), -1)
    running = np.cumsum(diff, axis=1)[:, :HOURS]
    modes, mode_of_trip = np.unique(tt.route_mode[tt.trip_route].astype(str), return_inverse=True)
    diff_mode = np.zeros((n, len(modes), HOURS + 1), np.int64)
    np.add.at(diff_mode, (tt.trip_service, mode_of_trip, h0), 1)
    np.add.at(diff_mode, (tt.trip_service, mode_of_trip, h1 + 1), -1)
    by_mode = np.cumsum(diff_mode, axis=2)[:, :, :HOURS]
    trips = np.bincount(tt.trip_service, minlength=n).astype(np.int64)
    big = np.iinfo(np.int64).max
    first = np.full(n, big, np.int64)
    last = np.full(n, -1, np.int64)
    np.minimum.at(first, tt.trip_service, start)
    np.maximum.at(last, tt.trip_service, start)
    return _Coverage(running, by_mode, tuple(str(m) for m in modes), trips, first, last)


def _active(tt: BaseTimetable, day: dt.date) -> NDArray[np.bool_]:
    keys = tt.transit.active_service_keys(day)
    index = {str(k): i for i, k in enumerate(tt.service_keys)}
    mask = np.zeros(len(tt.service_keys), bool)
    mask[[index[k] for k in keys if k in index]] = True
    return mask


def service_days(tt: BaseTimetable, start: dt.date, end: dt.date) -> list[ServiceDay]:
    """Transit service on each date from ``start`` to ``end`` (both included).

    Parameters
    ----------
    tt : BaseTimetable
        The city's timetable.
    start, end : datetime.date
        The dates asked for; ``end`` is not before ``start``.

    Returns
    -------
    list of ServiceDay
        One per date, in order; a date outside the feeds' period has no service.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    cover = _coverage(tt)
    days: list[ServiceDay] = []
    previous = _active(tt, start - dt.timedelta(days=1))
    for k in range((end - start).days + 1):
        day = start + dt.timedelta(days=k)
        today = _active(tt, day)
        by_hour = cover.running[today, :24].sum(axis=0) + cover.running[previous, 24:].sum(axis=0)
        trips = int(cover.trips[today].sum())
        per_mode = cover.by_mode[today, :, :24].sum(axis=0) + cover.by_mode[previous, :, 24:].sum(
            axis=0
        )
        days.append(
            ServiceDay(
                date=day,
                trips=trips,
                hours=tuple(int(h) for h in np.flatnonzero(by_hour > 0)),
                first_departure_s=int(cover.first_s[today].min()) if trips else None,
                last_departure_s=int(cover.last_s[today].max()) if trips else None,
                modes={
                    mode: tuple(int(h) for h in np.flatnonzero(per_mode[m] > 0))
                    for m, mode in enumerate(cover.modes)
                },
            )
        )
        previous = today
    return days
