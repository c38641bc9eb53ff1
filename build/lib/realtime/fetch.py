"""HTTP fetching for pollers: timeouts, retries with backoff, conditional requests.

A thin adapter around httpx: it returns bytes (or "not modified") and raises
:class:`FetchError` with a human reason; parsing is the pure parsers' job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from correspondance.errors import CorrespondanceError


class FetchError(CorrespondanceError, ConnectionError):
    """A feed could not be fetched (after retries)."""

    code = "feed_unreachable"


@dataclass(frozen=True)
class Fetched:
    """A response body, or ``None`` when the server said 304 Not Modified."""

    body: bytes | None
    status: int


class Fetcher:
    """Conditional GETs with retries; remembers ETag / Last-Modified per URL."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        retries: int = 2,
        backoff_s: float = 0.2,
        timeout_s: float = 5.0,
    ) -> None:
        self._client = client
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout = httpx.Timeout(timeout_s)
        self._validators: dict[str, dict[str, str]] = {}

    async def get(self, url: str) -> Fetched:
        """GET ``url``; 304 gives ``Fetched(None, 304)``.

        Raises
        ------
        FetchError
            After the last retry, naming the reason (timeout, refused, HTTP status).
        """
        headers = dict(self._validators.get(url, {}))
        reason = "no attempt"
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._client.get(url, headers=headers, timeout=self._timeout)
            except httpx.TimeoutException:
                reason = f"timeout after {self._timeout.read:.1f} s"
                continue
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__}: {exc})"
                continue
            if response.status_code == 304:
                return Fetched(None, 304)
            if response.status_code >= 500 or response.status_code == 429:
                reason = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code}")
            validators = {}
            if etag := response.headers.get("etag"):
                validators["If-None-Match"] = etag
            if modified := response.headers.get("last-modified"):
                validators["If-Modified-Since"] = modified
            self._validators[url] = validators
            return Fetched(response.content, 200)
        raise FetchError(f"{url}: {reason}")

    def forget(self, url: str) -> None:
        """Drop the conditional validators of a URL (force a full fetch next time)."""
        self._validators.pop(url, None)
