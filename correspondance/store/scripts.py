"""Scripts: a caller's multi-step operation that a backend runs atomically, in one round trip.

A :class:`StoreScript` carries two implementations, Lua for Redis and a Python twin for the
in-process backend; :func:`encode_arg` gives both the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from correspondance.store.base import StateStore

ScriptArg = str | bytes | int | float
"""What a script argument may be; it reaches the script as bytes (see :func:`encode_arg`)."""

ScriptResult = list[int | bytes]
"""What a script returns: a flat list of integers and byte strings."""

LocalScript = Callable[["StateStore", list[str], list[bytes]], Coroutine[Any, Any, ScriptResult]]


def encode_arg(value: ScriptArg) -> bytes:
    """Encode a script argument the way Redis receives it (``redis-py``'s encoding).

    Parameters
    ----------
    value : str, bytes, int or float
        The argument (floats as ``repr``, so a number survives the round trip exactly).

    Returns
    -------
    bytes
        The argument as both implementations of a script read it.

    Raises
    ------
    TypeError
        If it is of another type (``bool`` included: say ``1`` or ``0``).
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"script arguments are str, bytes, int or float, not {type(value).__name__}"
        )
    return repr(value).encode()


@dataclass(frozen=True, eq=False)
class StoreScript:
    """A multi-step operation on several keys that runs atomically, in one round trip.

    Written twice, and both must behave the same (test them on both backends):

    * ``lua`` for Redis (``EVALSHA``; ``KEYS`` carry the namespace prefix, ``ARGV`` are
      the encoded arguments). It returns a flat table of integers and strings (no ``nil``
      inside: use ``0`` or ``''``).
    * ``local`` for the in-process backend: ``async def local(store, keys, args)`` over the
      store's own methods, with ``args`` as bytes (:func:`encode_arg`), returning a list of
      ``int`` and ``bytes``. It must await nothing but that store's methods: they never
      suspend, so the whole function runs without another task in between, i.e. atomically
      (the memory backend checks this and raises ``RuntimeError`` if it suspends).

    Attributes
    ----------
    name : str
        For error messages.
    lua : str
        The Redis implementation.
    local : callable
        The in-process implementation.
    idempotent : bool, default False
        Whether running it twice with the same keys and arguments leaves the store, and
        answers, as running it once: then the Redis backend repeats it when the connection
        broke mid-call (it may or may not have run), within its ride-through.
    """

    name: str
    lua: str
    local: LocalScript
    idempotent: bool = False
