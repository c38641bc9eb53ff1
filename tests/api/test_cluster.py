"""The documented topology on a Redis Cluster: three masters on loopback (no replicas), one
``correspondance worker`` and two ``correspondance serve`` processes of role ``api``, all
with ``REDIS_URL=redis+cluster://…``.

A contributor's report posted to one API process becomes a switch suggestion on a trip
socket held by the *other* API process: intake (one script), fusion, the fenced publish
(one script: lock, state, stream), the trip's session and outbox, the hub's batched outbox
read — every multi-key step stays in one hash slot, and the state spreads over the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from processes import RedisCluster, redis_cluster, serve, wait_until, worker
from topology_helpers import suggestion_on_other_api
from trip_helpers import CITY, trip_settings

from correspondance.settings import Settings
from realtime.trips.sessions import trip_key
from routing.base import CityBase

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cluster_topology(
    tmp_path: Path, poa_base: CityBase
) -> Iterator[tuple[RedisCluster, Settings, list[str]]]:
    """Redis Cluster + one worker + two API processes; yields the API base URLs."""
    with ExitStack() as stack:
        cluster = stack.enter_context(redis_cluster(tmp_path / "cluster"))
        settings = trip_settings(tmp_path, redis=True, redis_url=cluster.url, warm_up=False)
        stack.enter_context(worker(settings, tmp_path / "worker.log"))
        api = settings.model_copy(update={"role": "api"})
        urls = [
            stack.enter_context(serve(api, tmp_path / f"api-{i}.log")).url or "" for i in range(2)
        ]
        client = cluster.client()
        lock = f"{settings.redis_prefix}{{{settings.redis_prefix}}}lock:writer:{CITY}"
        wait_until(lambda: client.get(lock) is not None, 30, "a writer on the cluster")
        client.close()
        yield cluster, settings, urls


async def test_a_report_reaches_a_socket_on_the_other_api_process_through_a_cluster(
    cluster_topology: tuple[RedisCluster, Settings, list[str]], poa_base: CityBase
) -> None:
    cluster, settings, (first, second) = cluster_topology
    async with suggestion_on_other_api(first, second, poa_base) as suggested:
        trip_id = suggested.trip_id
    assert suggested.waited_s < 5.0
    # where the keys went: the trip under its partition's tag, the rest under the namespace's
    prefix = settings.redis_prefix
    client = cluster.client()
    try:
        session = f"{prefix}{trip_key(trip_id)}"
        stream = f"{prefix}{{{prefix}}}events"
        assert client.exists(session) == 1
        assert client.xlen(stream) > 0
        assert client.keyslot(session) != client.keyslot(stream)  # free to live apart
    finally:
        client.close()
