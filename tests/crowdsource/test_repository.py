"""Stored reports: acknowledged once stored, duplicates ignored, expiry, export and deletion,
and no raw identifier at rest (every key and value scanned). Both store backends."""

from __future__ import annotations

import asyncio
import time

import pytest
from crowdsource_helpers import CITY, SECRET, make_report

from correspondance.store import StateStore
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.fusion import ContributorWeights, Verdict
from crowdsource.models import Report
from crowdsource.repository import REPORTS_DELETED, ReportRepository
from crowdsource.selfdata import delete_contributor, export_contributor
from crowdsource.tokens import address_key, contributor_key

pytestmark = pytest.mark.anyio

TOKEN = "device-token-AAAABBBBCCCCDDDD"
OTHER_TOKEN = "device-token-EEEEFFFFGGGGHHHH"
ADDRESS = "203.0.113.77"


async def _everything_at_rest(store: StateStore) -> list[bytes]:
    """Every key and every value in the store, as bytes (events included)."""
    found: list[bytes] = []
    for key in await store.scan_keys("*"):
        found.append(key.encode())
        if key in ("events", "events:seq"):
            continue
        for getter in (store.get, store.hgetall, store.smembers):
            try:
                value = await getter(key)
            except Exception:  # another kind of value: try the next getter
                continue
            if isinstance(value, bytes):
                found.append(value)
            elif isinstance(value, dict):
                found += [k.encode() for k in value] + list(value.values())
            elif isinstance(value, set):
                found += [m.encode() for m in value]
            break
    for event in await store.read_events():
        found.append(event.model_dump_json().encode())
    return found


async def test_add_then_read_back(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    report = make_report(origin="net-a")
    assert await repo.add(report) is True
    stored = await store.get(repo.report_key(report.report_id))
    assert stored is not None
    assert b"net-a" not in stored
    (recent,) = await repo.recent(900)
    assert recent == report  # the pending index keeps the network hash, for fusion
    ttl = await store.ttl(repo.report_key(report.report_id))
    assert ttl is not None
    assert 86_000 < ttl <= 86_400
    with pytest.raises(ValueError, match="of oslo given to the porto-alegre repository"):
        await repo.add(make_report(city="oslo"))


async def test_exact_duplicates_are_ignored(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    now = time.time()
    first = make_report(observed_at=now - 30)
    assert await repo.add(first)
    assert not await repo.add(make_report(observed_at=now - 1))  # same within 60 s
    assert await repo.add(make_report(observed_at=now - 1, level=2))  # another level
    assert await repo.add(make_report(observed_at=now - 1, edges=(101,)))  # another edge
    assert await repo.add(make_report(observed_at=now - 1, contributor="d" * 64))
    assert await repo.add(make_report(observed_at=now + 35))  # 65 s after the first
    assert len(await repo.recent(900)) == 5


async def test_raw_reports_really_expire(store: StateStore) -> None:
    repo = ReportRepository(store, CITY, raw_ttl_s=0.5)
    report = make_report()
    assert await repo.add(report)
    assert len(await repo.export(report.contributor)) == 1
    await asyncio.sleep(0.8)
    assert await store.get(repo.report_key(report.report_id)) is None
    assert await repo.export(report.contributor) == []
    assert await repo.recent(900) == []
    # nothing about the report is left: no report, index, pending entry
    left = [k for k in await store.scan_keys("cs:*") if ":dedup:" not in k]
    assert left == []


async def test_old_reports_leave_the_fusion_window(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    now = time.time()
    await repo.add(make_report(observed_at=now - 1000))
    await repo.add(make_report(observed_at=now - 100, edges=(5,)))
    assert [r.edge_ids for r in await repo.recent(900, now)] == [(5,)]


async def test_no_raw_token_or_address_at_rest(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    guard = AbuseGuard(store, AbuseLimits(), secret=SECRET, city=CITY)
    weights = ContributorWeights(store)
    contributor = contributor_key(TOKEN, SECRET)
    origin = address_key(ADDRESS, SECRET)
    for i in range(3):
        report = make_report(contributor=contributor, origin=origin, edges=(200 + i,))
        await guard.check(contributor, ADDRESS, report, time.time())
        await repo.add(report)
    await weights.apply([Verdict("r", contributor, True)])
    await repo.delete_all(contributor_key(OTHER_TOKEN, SECRET))  # an event, too
    at_rest = b"\n".join(await _everything_at_rest(store))
    assert contributor.encode() in at_rest  # the scan does see what is there
    for secret_thing in (TOKEN, ADDRESS, "203.0.113", SECRET.decode()):
        assert secret_thing.encode() not in at_rest, secret_thing


async def test_export_and_delete_everything_linked_to_a_token(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    guard = AbuseGuard(store, AbuseLimits(), secret=SECRET, city=CITY)
    weights = ContributorWeights(store)
    mine, theirs = contributor_key(TOKEN, SECRET), contributor_key(OTHER_TOKEN, SECRET)
    now = time.time()
    for i, contributor in enumerate([mine, mine, theirs]):
        report = make_report(contributor=contributor, edges=(300 + i,), observed_at=now - 10 + i)
        await guard.check(contributor, ADDRESS, report, now)
        await repo.add(report)
    await weights.apply([Verdict("x", mine, True), Verdict("y", theirs, True)])

    exported = await export_contributor(mine, [repo], weights)
    assert [r["edge_ids"] for r in exported["reports"]] == [[300], [301]]
    assert exported["weight"] == pytest.approx(0.35)
    assert all("contributor" not in r and "origin" not in r for r in exported["reports"])

    async with store.subscribe() as events:
        assert await delete_contributor(mine, [repo], weights, [guard]) == 2
        event = await anext(events)
    assert event.type == REPORTS_DELETED
    assert event.payload == {"n_reports": 2, "edge_ids": [300, 301]}
    assert mine not in event.model_dump_json()

    at_rest = b"\n".join(await _everything_at_rest(store))
    assert mine.encode() not in at_rest  # no key nor value names them any more
    assert theirs.encode() in at_rest  # others are untouched
    assert await export_contributor(mine, [repo], weights) == {"reports": [], "weight": None}
    assert [r.edge_ids for r in await repo.recent(900)] == [(302,)]
    assert await repo.delete_all(mine) == 0  # idempotent, and no event for nothing


async def test_recent_reads_additions_and_deletions_between_calls(store: StateStore) -> None:
    repo = ReportRepository(store, CITY)
    first = make_report(contributor="a" * 64, origin="net-a")
    second = make_report(contributor="b" * 64, edges=(7, 8), origin=None)
    await repo.add(first)
    assert await repo.recent(900) == [first]
    await repo.add(second)  # decoded once, then reused from the previous read
    assert sorted(await repo.recent(900), key=lambda r: r.contributor) == [first, second]
    assert sorted(await repo.recent(900), key=lambda r: r.contributor) == [first, second]
    await repo.delete_all("a" * 64)
    assert await repo.recent(900) == [second]


def test_many_from_json_reads_what_from_json_reads() -> None:
    reports = [
        make_report(origin="net-a"),
        make_report(kind="closure", edges=(1, 2, 3), origin=None),
        make_report(heading=90.5, mode=None),
    ]
    raws = [r.to_json(with_origin=True) for r in reports] + [reports[2].to_json()]
    many = Report.many_from_json(raws)
    assert many == [Report.from_json(raw) for raw in raws] == [*reports, reports[2]]
    assert [type(r.edge_ids) for r in many] == [tuple] * 4
    assert [vars(r) for r in many] == [vars(Report.from_json(raw)) for raw in raws]
    assert Report.many_from_json([]) == []


@pytest.mark.parametrize(
    "bad", [b"{", b'{"report_id": "x"}', b'{"a": 1}, {"b": 2}', b"[1]", b"", b"1"]
)
def test_many_from_json_refuses_what_from_json_refuses(bad: bytes) -> None:
    good = make_report().to_json(with_origin=True)
    with pytest.raises((ValueError, TypeError, KeyError)):
        Report.from_json(bad)
    with pytest.raises((ValueError, TypeError, KeyError)):
        Report.many_from_json([good, bad])
