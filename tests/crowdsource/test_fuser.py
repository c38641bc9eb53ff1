"""The fuser end to end: reports through intake, fusion, the single writer, the routing
overlay a car plan reads, and a follower in another process; deletion and a scripted
attack of fresh tokens from one address."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from crowdsource_helpers import CITY, REDIS_URL, SECRET

from correspondance.store import StateStore, create_store
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.decisions import StoredDecisions, load_decisions
from crowdsource.errors import RateLimitedError
from crowdsource.fuser import Fuser
from crowdsource.fusion import ContributorWeights
from crowdsource.intake import prepare_report
from crowdsource.models import ReportIn
from crowdsource.repository import ReportRepository
from crowdsource.selfdata import delete_contributor
from crowdsource.tokens import address_key, contributor_key
from realtime.writer import CONGESTION_CHANGED, LiveFollower, LiveWriter, congestion_state_key
from routing.base import CityBase
from routing.modes import ModeContext, direct
from routing.overlay import LiveOverlay, OverlayHolder

pytestmark = pytest.mark.anyio

CENTRE = (-30.0277, -51.2287)  # Praça da Alfândega area
EAST = (-30.0587, -51.1734)  # Avenida Ipiranga, Partenon


def car_trip(base: CityBase, overlay: LiveOverlay) -> tuple[float, tuple[int, ...]]:
    """Seconds and drive edges of the own-car option from the centre to the east side."""
    ctx = ModeContext(base, overlay, CENTRE, EAST, 1.3, 1200.0)
    chain = direct(ctx, "car")
    (segment,) = chain.describe(0)
    return float(chain.final_cost[0]), segment.edges


class City:
    """One city's crowdsource pipeline over a store, as the API and the writer run it."""

    def __init__(self, base: CityBase, store: StateStore) -> None:
        self.base = base
        self.drive = base.streets["drive"]
        self.repo = ReportRepository(store, CITY)
        self.guard = AbuseGuard(store, AbuseLimits(), secret=SECRET, city=CITY)
        self.weights = ContributorWeights(store)
        self.holder = OverlayHolder(self.drive)
        self.writer = LiveWriter(CITY, self.holder, store)
        self.decisions = StoredDecisions(store, CITY, rescan_s=0.0)
        self.fuser = Fuser(
            self.repo, self.weights, self.holder, self.writer, 2, decisions=self.decisions
        )

    async def report(
        self,
        token: str,
        address: str,
        lat: float,
        lon: float,
        heading: float | None,
        **body: object,
    ) -> bool:
        """POST one report: hash, validate, match, check abuse, store (acknowledged)."""
        now = time.time()
        contributor = contributor_key(token, SECRET)
        report = prepare_report(
            ReportIn(lat=lat, lon=lon, heading=heading, **body),  # type: ignore[arg-type]
            contributor=contributor,
            origin=address_key(address, SECRET),
            city=self.base.city,
            drive=self.drive,
            now=now,
        )
        await self.guard.check(contributor, address, report, now)
        return await self.repo.add(report)


def _point_on(base: CityBase, edge: int) -> tuple[float, float, float]:
    """Midpoint of an edge's geometry and the bearing of the edge there."""
    coords = base.streets["drive"].edge_coords(edge)
    middle = len(coords) // 2
    a, b = coords[max(middle - 1, 0)], coords[middle]
    dx = (b[0] - a[0]) * np.cos(np.radians(a[1]))
    bearing = float(np.degrees(np.arctan2(dx, b[1] - a[1])) % 360)
    lon, lat = (a + b) / 2
    return float(lat), float(lon), bearing


async def _jam_on(city: City, edge: int, tokens: list[str], addresses: list[str]) -> None:
    lat, lon, bearing = _point_on(city.base, edge)
    for token, address in zip(tokens, addresses, strict=True):
        await city.report(token, address, lat, lon, bearing, kind="congestion", level=4)


async def test_corroborated_reports_slow_the_car_plan(
    poa_base: CityBase, store: StateStore
) -> None:
    city = City(poa_base, store)
    free_s, edges = car_trip(poa_base, city.holder.current)
    # the longest edge of the route is the one to jam
    drive = city.drive
    edge = max(edges, key=lambda e: float(drive.base_time_s[e]))
    await _jam_on(city, edge, ["tokenAAAAAAAAAAAAAAAA"], ["192.0.2.1"])
    assert await city.fuser.fuse_once() == set()  # one contributor: nothing yet
    assert city.holder.current.drive_multiplier[edge] == 1.0
    await _jam_on(city, edge, ["tokenBBBBBBBBBBBBBBBB"], ["192.0.2.2"])
    assert await city.fuser.fuse_once() == {edge}
    multiplier = float(city.holder.current.drive_multiplier[edge])
    assert multiplier == pytest.approx(2.7)  # two new voices at level 4
    jammed_s, _ = car_trip(poa_base, city.holder.current)
    assert jammed_s > free_s
    # the fused state is stored without any contributor link, and announced
    stored = await store.get(congestion_state_key(CITY))
    assert stored == f'{{"multipliers":{{"{edge}":2.7}},"closed":[]}}'.encode()
    (event,) = [e for e in await store.read_events() if e.type == CONGESTION_CHANGED]
    assert event.payload["edge_ids"] == [edge]
    # agreeing with each other raised both weights (0.3 → 0.35): the next run weighs more
    contributors = [
        contributor_key(t, SECRET) for t in ("tokenAAAAAAAAAAAAAAAA", "tokenBBBBBBBBBBBBBBBB")
    ]
    assert await ContributorWeights(store).get_many(contributors) == {
        c: pytest.approx(0.35) for c in contributors
    }
    assert await city.fuser.fuse_once() == {edge}
    assert city.holder.current.drive_multiplier[edge] == pytest.approx(2.8)
    # each report is judged once: nothing changes any more, and no event is published
    assert await city.fuser.fuse_once() == set()
    assert len([e for e in await store.read_events() if e.type == CONGESTION_CHANGED]) == 2


async def test_clear_reports_and_deletion_bring_it_back(
    poa_base: CityBase, store: StateStore
) -> None:
    city = City(poa_base, store)
    _, edges = car_trip(poa_base, city.holder.current)
    edge = edges[len(edges) // 2]
    tokens = ["tokenAAAAAAAAAAAAAAAA", "tokenBBBBBBBBBBBBBBBB"]
    await _jam_on(city, edge, tokens, ["192.0.2.1", "192.0.2.2"])
    await city.fuser.fuse_once()
    assert city.holder.current.drive_multiplier[edge] > 1.0
    # one contributor deletes everything: fusion forgets their report, the edge is free
    await delete_contributor(
        contributor_key(tokens[0], SECRET), [city.repo], city.weights, [city.guard]
    )
    assert await city.fuser.fuse_once() == {edge}
    assert city.holder.current.drive_multiplier[edge] == 1.0
    assert await store.get(congestion_state_key(CITY)) == b'{"multipliers":{},"closed":[]}'


async def test_operator_decisions_are_read_from_the_operator_keys(
    poa_base: CityBase, store: StateStore
) -> None:
    city = City(poa_base, store)
    now = time.time()
    expires = "2099-01-01T00:00:00+00:00"
    await store.set(
        f"ops:{CITY}:confirm:12", f'{{"edge":12,"level":4,"expires_at":"{expires}"}}'.encode()
    )
    await store.set(f"ops:{CITY}:dismiss:13", f'{{"edge":13,"expires_at":"{expires}"}}'.encode())
    await store.set(
        f"ops:{CITY}:incident:x1",
        f'{{"kind":"closure","edges":[20,21],"expires_at":"{expires}"}}'.encode(),
    )
    await store.set(
        f"ops:{CITY}:incident:x2",
        b'{"kind":"incident","level":3,"edges":[30],"expires_at":"2000-01-01T00:00:00+00:00"}',
    )
    decisions = await load_decisions(store, CITY, now)
    assert decisions.confirmations == {12: 4}
    assert decisions.dismissals == {13}
    assert decisions.declarations == {20: np.inf, 21: np.inf}  # the expired one is not in force
    assert await city.fuser.fuse_once() == {12, 20, 21}
    multiplier = city.holder.current.drive_multiplier
    assert (multiplier[12], multiplier[20], multiplier[21], multiplier[30]) == (
        4.0,
        np.inf,
        np.inf,
        1.0,
    )


async def test_attack_of_fresh_tokens_from_one_address_moves_nothing(
    poa_base: CityBase, store: StateStore
) -> None:
    city = City(poa_base, store)
    _, edges = car_trip(poa_base, city.holder.current)
    edge = edges[len(edges) // 2]
    lat, lon, bearing = _point_on(poa_base, edge)
    accepted = 0
    for i in range(50):
        token = f"attacker-token-{i:04d}-xxxxxxxx"
        await city.report(token, "203.0.113.9", lat, lon, bearing, kind="closure")
        accepted += 1
    assert accepted == 50  # under the per-network limit, and still:
    assert await city.fuser.fuse_once() == set()
    assert city.holder.current.drive_multiplier[edge] == 1.0
    assert city.holder.current.version == 0
    # the flood goes on: refused with 429 from the 61st report of the minute
    for i in range(50, 60):
        await city.report(
            f"attacker-token-{i:04d}-xxxxxxxx", "203.0.113.9", lat, lon, bearing, kind="closure"
        )
    with pytest.raises(RateLimitedError, match="from this network"):
        await city.report(
            "attacker-token-0061-xxxxxxxx", "203.0.113.9", lat, lon, bearing, kind="closure"
        )
    # one honest report from elsewhere: the attacker's network weighs one voice, no closure
    await city.report(
        "honest-token-AAAAAAAAAAAA", "198.51.100.1", lat, lon, bearing, kind="congestion", level=1
    )
    await city.fuser.fuse_once()
    assert 1.0 < city.holder.current.drive_multiplier[edge] < 3.0


async def test_a_follower_in_another_process_sees_the_fused_map(
    poa_base: CityBase, redis_store: StateStore, redis_prefix: str
) -> None:
    city = City(poa_base, redis_store)
    worker_store = create_store(REDIS_URL, prefix=redis_prefix)
    worker_holder = OverlayHolder(city.drive)
    follower = LiveFollower(CITY, worker_holder, worker_store)
    try:
        _, edges = car_trip(poa_base, city.holder.current)
        edge = edges[len(edges) // 2]

        async def follow() -> None:
            async for event in worker_store.subscribe():
                if await follower.apply(event) and event.type == CONGESTION_CHANGED:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        await _jam_on(
            city,
            edge,
            ["tokenAAAAAAAAAAAAAAAA", "tokenBBBBBBBBBBBBBBBB"],
            ["192.0.2.1", "192.0.2.2"],
        )
        await city.fuser.fuse_once()
        await asyncio.wait_for(task, timeout=3)
        assert time.perf_counter() - started < 1.0
        np.testing.assert_array_equal(
            worker_holder.current.drive_multiplier, city.holder.current.drive_multiplier
        )
        assert worker_holder.current.drive_multiplier[edge] > 1.0
        # a worker starting late loads the stored map
        late = OverlayHolder(city.drive)
        await LiveFollower(CITY, late, worker_store).catch_up()
        assert late.current.drive_multiplier[edge] == worker_holder.current.drive_multiplier[edge]
        # and an edge no longer congested goes back to 1.0 there too
        await city.writer.apply_congestion({})
        await follower.apply((await worker_store.read_events())[-1])
        assert worker_holder.current.drive_multiplier[edge] == 1.0
    finally:
        await worker_store.aclose()
