"""Shared state and the one event stream, behind one interface with two backends.

``create_store(None)`` gives the in-process backend (embedded default);
``create_store("redis://...")`` the Redis one, shared between processes. See ``README.md``.
"""

from correspondance.store.base import StateStore
from correspondance.store.errors import (
    EventsLostError,
    FencedOutError,
    StoreError,
    StoreTypeError,
    StoreUnavailableError,
)
from correspondance.store.events import Event, Fence, Subscription
from correspondance.store.factory import create_store
from correspondance.store.memory import MemoryStateStore
from correspondance.store.redis import RedisStateStore
from correspondance.store.scripts import ScriptResult, StoreScript

__all__ = [
    "Event",
    "EventsLostError",
    "Fence",
    "FencedOutError",
    "MemoryStateStore",
    "RedisStateStore",
    "ScriptResult",
    "StateStore",
    "StoreError",
    "StoreScript",
    "StoreTypeError",
    "StoreUnavailableError",
    "Subscription",
    "create_store",
]
