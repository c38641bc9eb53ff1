"""The common start of a city's records kept for a while in the shared store (the audit log,
the dashboard samples): which store, which city, and for how long."""

from __future__ import annotations

from typing import ClassVar

from correspondance.store import StateStore


class CityRecords:
    """A city's records in the shared store, kept ``keep_s`` seconds.

    Parameters
    ----------
    store : StateStore
        The shared store.
    city : str
        City id.
    keep_s : float, optional
        How long records are kept; default: the class's ``KEEP_S``.
    """

    KEEP_S: ClassVar[float]

    def __init__(self, store: StateStore, city: str, keep_s: float | None = None) -> None:
        self.store = store
        self.city = city
        self.keep_s = self.KEEP_S if keep_s is None else keep_s
