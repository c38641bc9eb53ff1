"""Shared constants and a report factory for the crowdsource tests."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from crowdsource.models import Report

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = b"test-secret-0123456789abcdef"
CITY = "porto-alegre"


def make_report(
    contributor: str = "c" * 64,
    edges: tuple[int, ...] = (100,),
    kind: str = "congestion",
    level: int | None = 3,
    observed_at: float | None = None,
    origin: str | None = None,
    **fields: Any,
) -> Report:
    """A report with sensible defaults (central Porto Alegre, now)."""
    now = time.time()
    values: dict[str, Any] = {
        "report_id": uuid.uuid4().hex,
        "contributor": contributor,
        "lat": -30.0277,
        "lon": -51.2287,
        "kind": kind,
        "level": level if kind == "congestion" else None,
        "heading": None,
        "mode": "car",
        "observed_at": now if observed_at is None else observed_at,
        "received_at": now,
        "edge_ids": edges,
        "city": CITY,
        "origin": origin,
    }
    values.update(fields)
    return Report(**values)
