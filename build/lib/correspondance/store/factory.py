"""Choose the store backend from configuration."""

from __future__ import annotations

from correspondance.store.base import StateStore
from correspondance.store.memory import MemoryStateStore
from correspondance.store.redis import RedisStateStore


def create_store(redis_url: str | None, *, prefix: str = "corr:") -> StateStore:
    """Build the state store a process should use.

    No network I/O happens here: a Redis store connects on first use, so an unreachable
    server shows as :class:`~correspondance.store.errors.StoreUnavailableError` on the first
    operation (call :meth:`StateStore.ping` at start-up to fail early).

    Parameters
    ----------
    redis_url : str or None
        ``None`` or empty: the in-process backend (embedded default, one process only).
        Otherwise a ``redis://`` URL shared by every process of the deployment.
    prefix : str, default "corr:"
        Key namespace on Redis (ignored by the in-process backend, which is private).

    Returns
    -------
    StateStore
        The store; close it with ``await store.aclose()``.

    Raises
    ------
    ValueError
        If ``redis_url`` is not a URL redis-py understands.
    """
    if not redis_url:
        return MemoryStateStore()
    return RedisStateStore(redis_url, prefix=prefix)
