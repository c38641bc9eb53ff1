"""Errors raised by the state store.

They subclass both :class:`~correspondance.errors.CorrespondanceError` (so the API's single
error handler answers them by ``code``: ``store_unavailable`` is a 503, the others are
internal, a logged 500) and a built-in (so generic callers can catch
``ConnectionError``/``TypeError``/``LookupError`` without importing this module).
Backends translate every driver exception into one of these: no raw ``redis`` exception
crosses the store's interface.
"""

from __future__ import annotations

from correspondance.errors import CorrespondanceError


class StoreError(CorrespondanceError):
    """Any failure of the state store that is not one of the more specific errors below."""

    code = "store_error"


class StoreUnavailableError(StoreError, ConnectionError):
    """The backing server cannot be reached (refused, timed out, closed); the API answers 503."""

    code = "store_unavailable"


class FencedOutError(StoreError):
    """A fenced write was refused: the lock that guards it is no longer held by its owner.

    The writer that gets this lost its lock (it expired, or another process took it) and
    must stop writing at once; nothing of the refused write was stored.
    """

    code = "fenced_out"


class StoreTypeError(StoreError, TypeError):
    """A key holds another kind of value than the operation expects (Redis ``WRONGTYPE``)."""

    code = "store_wrong_type"


class EventsLostError(StoreError, LookupError):
    """Events a subscriber needs were trimmed from the history before it could read them.

    Raised by a subscription when the next event it can get is not ``last_seq + 1``. The
    consumer cannot patch its state incrementally any more: it must rebuild it from the
    store and subscribe again from :meth:`StateStore.last_event_seq`.

    Attributes
    ----------
    last_seq : int
        The last event the subscriber received (or its starting point).
    next_seq : int
        The oldest event still available after it.
    """

    code = "events_lost"

    def __init__(self, last_seq: int, next_seq: int, *, message: str | None = None) -> None:
        super().__init__(
            message
            or f"events {last_seq + 1}..{next_seq - 1} were trimmed from the history before "
            "this subscriber read them; rebuild state and resubscribe"
        )
        self.last_seq = last_seq
        self.next_seq = next_seq
