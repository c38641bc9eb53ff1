"""The report desk (``crowdsource.desk``) without HTTP: take, batch, export, delete, secret.

The HTTP contract of the same operations is ``tests/api/test_reports.py``; these pin what
the desk itself answers, on both store backends.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from correspondance.settings import Settings
from correspondance.store import StateStore
from crowdsource.desk import SECRET_KEY, ReportDesk, ReportDeskOpener
from crowdsource.errors import RateLimitedError, ReportRejectedError, UnknownReportError
from routing.base import CityBase

pytestmark = pytest.mark.anyio

CITY = "porto-alegre"
SPOT = {"lat": -30.0321681, "lon": -51.2152765, "heading": 4.0}  # drive edge 282
ADDRESS = "127.33.44.55"


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": None,
        "secret_file": tmp_path / "secret",
        "contributor_secret": "desk-tests-secret-0123456789abcdef",
    }
    values.update(overrides)
    return Settings(**values)


def body(**fields: Any) -> dict[str, Any]:
    return {**SPOT, "kind": "congestion", "level": 3, **fields}


async def test_a_report_is_taken_exported_and_deleted(
    store: StateStore, tmp_path: Path, poa_base: CityBase
) -> None:
    desk = await ReportDesk.open(store, settings(tmp_path), [CITY])
    contributor = desk.contributor(secrets.token_urlsafe(24))
    raw = json.dumps(body()).encode()
    taken = await desk.take(raw, contributor=contributor, address=ADDRESS, base=poa_base)
    assert taken.status == "accepted"
    assert taken.report_id is not None
    assert 282 in taken.edge_ids
    again = await desk.take(raw, contributor=contributor, address=ADDRESS, base=poa_base)
    assert (again.status, again.report_id) == ("duplicate", None)
    export = await desk.export(contributor)
    assert [r["report_id"] for r in export["reports"]] == [taken.report_id]
    with pytest.raises(UnknownReportError):
        await desk.delete_one(contributor, "not-a-report-of-theirs")
    await desk.delete_one(contributor, taken.report_id)
    assert (await desk.export(contributor))["reports"] == []
    assert await desk.delete(contributor) == 0


async def test_a_malformed_token_is_refused_naming_the_header(
    store: StateStore, tmp_path: Path
) -> None:
    desk = await ReportDesk.open(store, settings(tmp_path), [CITY])
    with pytest.raises(ReportRejectedError, match="X-Contributor-Token"):
        desk.contributor("short")


async def test_a_batch_answers_per_report_and_stops_at_a_rate_limit(
    store: StateStore, tmp_path: Path, poa_base: CityBase
) -> None:
    limited = settings(tmp_path, report_limits={"token_per_minute": 2})
    desk = await ReportDesk.open(store, limited, [CITY])
    contributor = desk.contributor(secrets.token_urlsafe(24))
    reports = [body(level=1), {"lat": 0}, body(level=2), body(level=3), body(level=4)]
    raw = json.dumps({"reports": reports}).encode()
    taken = await desk.take_batch(raw, contributor=contributor, address=ADDRESS, base=poa_base)
    assert [e.status for e in taken.entries] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert [e.error_code for e in taken.entries] == [
        None,
        "invalid_report",
        None,
        "rate_limited",
        "rate_limited",
    ]
    assert isinstance(taken.limited, RateLimitedError)
    assert (taken.count("accepted"), taken.count("rejected")) == (2, 3)
    # nothing stored at all: the rate limit itself is the answer
    with pytest.raises(RateLimitedError):
        await desk.take_batch(
            json.dumps({"reports": [body(level=4)]}).encode(),
            contributor=contributor,
            address=ADDRESS,
            base=poa_base,
        )
    await desk.delete(contributor)


async def test_a_batch_envelope_must_hold_one_to_a_hundred_reports(
    store: StateStore, tmp_path: Path, poa_base: CityBase
) -> None:
    desk = await ReportDesk.open(store, settings(tmp_path), [CITY])
    contributor = desk.contributor(secrets.token_urlsafe(24))
    for raw in (b"[]", b'{"reports": []}', json.dumps({"reports": [body()] * 101}).encode()):
        with pytest.raises(ReportRejectedError):
            await desk.take_batch(raw, contributor=contributor, address=ADDRESS, base=poa_base)


async def test_a_generated_secret_is_shared_through_the_store(
    redis_store: StateStore, tmp_path: Path
) -> None:
    generated = settings(tmp_path, contributor_secret=None)
    first = await ReportDeskOpener(redis_store, generated, [CITY]).desk()
    second = await ReportDeskOpener(redis_store, generated, [CITY]).desk()
    assert first.secret == second.secret
    assert len(first.secret) == 32
    assert await redis_store.get(SECRET_KEY) == first.secret.hex().encode()
    assert not generated.secret_file.exists()


async def test_unknown_abuse_limits_are_refused_when_the_desk_opens(
    store: StateStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown abuse limits"):
        await ReportDesk.open(store, settings(tmp_path, report_limits={"nope": 1}), [CITY])
