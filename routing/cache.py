"""The pickle cache of built things (a city's base, its place index) under ``var/cache``.

A cached file is trusted only if it unpickles to the expected type: a stale, truncated or
foreign one is rebuilt, never used. Writes are atomic (a temporary file replaced in one
step), and the files of older inputs beside it are removed.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# what unpickling a stale cache raises: a truncated file, classes renamed or reshaped since
_STALE = (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError)


def load_pickle(path: Path, kind: type[T]) -> T | None:
    """The ``kind`` cached at ``path``; ``None`` if missing, stale or of another type."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            value = pickle.load(handle)
    except _STALE:
        return None
    return value if isinstance(value, kind) else None


def save_pickle(path: Path, value: object, stale: str) -> None:
    """Cache ``value`` at ``path`` atomically; remove the files matching ``stale`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a half cache
    for old in path.parent.glob(stale):
        if old != path:
            old.unlink(missing_ok=True)


def load_or_build_pickle(
    path: Path, kind: type[T], build: Callable[[], T], stale: str, rebuild: bool = False
) -> tuple[T, bool]:
    """The ``kind`` cached at ``path``, or ``build()`` cached there now.

    Parameters
    ----------
    path : Path
        The cache file.
    kind : type
        What it must hold.
    build : callable
        Makes the value when the cache is missing, stale or ``rebuild`` is asked.
    stale : str
        Glob of the older files it replaces (:func:`save_pickle`).
    rebuild : bool, default False
        Build even if the cache is good.

    Returns
    -------
    (object, bool)
        The value and whether it came from the cache.
    """
    cached = None if rebuild else load_pickle(path, kind)
    if cached is not None:
        return cached, True
    value = build()
    save_pickle(path, value, stale)
    return value, False
