"""Progress along a followed plan for the trip sockets, kept small: one per connection.

:class:`Track` holds what ``progress`` needs (leg times, modes and float32 shapes), not the
plan: one API process holds tens of thousands of them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from realtime.trips.protocol import stamp


class Track:
    """The plan reduced to what progress needs: leg times, modes and float32 shapes."""

    __slots__ = ("_leg", "_steps", "_total", "arrival", "legs")

    def __init__(self, plan: dict[str, Any]) -> None:
        self._leg = -1  # the leg whose segment lengths are kept (the current one)
        self._steps: np.ndarray[Any, Any] | None = None
        self._total = 0.0
        self.legs = [
            (
                dt.datetime.fromisoformat(leg["departure"]).timestamp(),
                dt.datetime.fromisoformat(leg["arrival"]).timestamp(),
                "transit" if leg.get("trip_id") else leg["mode"],
                np.asarray(leg["geometry"]["coordinates"], dtype=np.float32).reshape(-1, 2),
            )
            for leg in plan["legs"]
        ]
        self.arrival = self.legs[-1][1]

    def progress(self, now: dt.datetime, position: tuple[float, float] | None) -> dict[str, Any]:
        """The ``progress`` body at trip time ``now``."""
        t = now.timestamp()
        index = next((i for i, leg in enumerate(self.legs) if t < leg[1]), len(self.legs) - 1)
        dep, arr, mode, shape = self.legs[index]
        if position is None:
            fraction = min(max((t - dep) / (arr - dep), 0.0), 1.0) if arr > dep else 1.0
            if len(shape) > 1:
                lat, lon = self._along(index, shape, fraction)
            elif len(shape) == 1:
                lat, lon = float(shape[0, 1]), float(shape[0, 0])
            else:
                lat, lon = 0.0, 0.0
        else:
            lat, lon = position
        eta = dt.datetime.fromtimestamp(max(self.arrival, t), now.tzinfo)
        return {
            "leg_index": index,
            "mode": mode,
            "position": {"lat": round(lat, 6), "lon": round(lon, 6)},
            "source": "position" if position is not None else "schedule",
            "eta": stamp(eta),
            "remaining_s": int(max(self.arrival - t, 0.0)),
        }

    def _along(
        self, index: int, shape: np.ndarray[Any, Any], fraction: float
    ) -> tuple[float, float]:
        """:func:`~realtime.trips.plan_view._along` on a leg's shape, the same float64
        arithmetic, with the segment lengths of the current leg kept between ticks."""
        if self._leg != index:
            xy = shape.astype(np.float64)
            scale = math.cos(math.radians(float(xy[:, 1].mean())))
            lengths = np.hypot(np.diff(xy[:, 0]) * scale, np.diff(xy[:, 1]))
            self._leg, self._steps, self._total = index, lengths, float(lengths.sum())
        steps = self._steps
        assert steps is not None
        if self._total == 0.0:
            return float(shape[0, 1]), float(shape[0, 0])
        target = min(max(fraction, 0.0), 1.0) * self._total
        cum = np.concatenate(([0.0], np.cumsum(steps)))
        k = min(int(np.searchsorted(cum, target, side="right")) - 1, len(steps) - 1)
        t = (target - cum[k]) / steps[k] if steps[k] > 0 else 0.0
        x0, y0 = float(shape[k, 0]), float(shape[k, 1])
        lon = x0 + t * (float(shape[k + 1, 0]) - x0)
        lat = y0 + t * (float(shape[k + 1, 1]) - y0)
        return float(lat), float(lon)
