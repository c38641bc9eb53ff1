"""PRIVACY.md's promises, checked on what a Redis deployment keeps after reports over HTTP.

Every key and value under the test prefix is read back (strings, hashes, sets, streams,
lists, sorted sets): no raw contributor token and no client address may appear anywhere;
raw reports expire with ``report_ttl_s``; after it, the fused live map is all that is left
of them, and it has no link to any contributor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from report_helpers import (
    CITY,
    EDGES,
    REDIS_URL,
    SECRET,
    TOKEN_HEADER,
    client,
    delete_prefix,
    fused,
    new_token,
    post_report,
    report_at,
    report_settings,
    serve,
    wait_for,
)

from correspondance.settings import Settings
from crowdsource.tokens import contributor_key
from realtime.writer import congestion_state_key
from routing.base import CityBase

# Unusual loopback addresses, so a hit can only come from a report's client.
ADDRESSES = ["127.201.33.47", "127.202.44.58", "127.203.55.69"]


def dump(prefix: str) -> dict[str, tuple[bytes, float | None]]:
    """Every key under ``prefix``: its whole content as bytes and its TTL (None: none)."""
    r: Any = redis.Redis.from_url(REDIS_URL, socket_timeout=5)  # untyped replies
    out: dict[str, tuple[bytes, float | None]] = {}
    try:
        for raw_key in r.scan_iter(match=f"{prefix}*", count=1000):
            key = raw_key.decode()
            kind = r.type(raw_key).decode()
            if kind == "string":
                content = r.get(raw_key) or b""
            elif kind == "hash":
                content = b"".join(k + b"=" + v for k, v in r.hgetall(raw_key).items())
            elif kind == "set":
                content = b",".join(sorted(r.smembers(raw_key)))
            elif kind == "list":
                content = b",".join(r.lrange(raw_key, 0, -1))
            elif kind == "zset":
                content = b",".join(r.zrange(raw_key, 0, -1))
            elif kind == "stream":
                content = b"".join(
                    k + b"=" + v for _, entry in r.xrange(raw_key) for k, v in entry.items()
                )
            elif kind == "none":  # expired between SCAN and TYPE
                continue
            else:
                raise AssertionError(f"unexpected Redis type {kind} at {key}")
            pttl = r.pttl(raw_key)
            out[key] = (content, None if pttl < 0 else pttl / 1000)
    finally:
        r.close()
    return out


def _variants(address: str) -> list[bytes]:
    return [address.encode(), address.replace(".", "-").encode(), address.replace(".", "").encode()]


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    value = report_settings("redis", tmp_path)
    yield value
    delete_prefix(value.redis_prefix)


def test_no_token_and_no_address_is_kept_anywhere(settings: Settings, poa_base: CityBase) -> None:
    tokens = [new_token() for _ in ADDRESSES]
    edge = EDGES["privacy"]["edge"]
    with serve(settings, poa_base) as url:
        for token, address in zip(tokens, ADDRESSES, strict=True):
            assert post_report(url, report_at("privacy"), token, address).status_code == 202
            batch = {"reports": [report_at("privacy", level=3)]}
            with client(address) as http:
                response = http.post(
                    f"{url}/api/v1/reports/batch", json=batch, headers={TOKEN_HEADER: token}
                )
            assert response.status_code == 200
        wait_for(lambda: edge in fused(settings), timeout_s=3)
        with client(ADDRESSES[0]) as http:
            http.get(f"{url}/api/v1/me/reports", headers={TOKEN_HEADER: tokens[0]})
            # a refused report (outside the city) and a throttled one leave nothing either
            http.post(
                f"{url}/api/v1/reports",
                json={"lat": 38.7, "lon": -9.1, "kind": "clear"},
                headers={TOKEN_HEADER: tokens[0]},
            )
        time.sleep(1.2)  # another fusion: weights and the fused map written
        at_rest = dump(settings.redis_prefix)
    assert any(":report:" in key for key in at_rest)
    assert any(":weight:" in key for key in at_rest)
    everything = b"\n".join(key.encode() + b" " + value for key, (value, _) in at_rest.items())
    for token in tokens:
        assert token.encode() not in everything
    for address in ADDRESSES:
        for variant in _variants(address):
            assert variant not in everything, address
    # what is kept is keyed hashes: the contributor hash is there, linked to reports only
    hashes = [contributor_key(t, SECRET.encode()) for t in tokens]
    assert all(h.encode() in everything for h in hashes)
    congestion_key = settings.redis_prefix + congestion_state_key(CITY)
    fused_map, _ = at_rest[congestion_key]
    assert json.loads(fused_map)  # edges and multipliers only
    for h in hashes:
        assert h.encode() not in fused_map
    for key, (value, ttl) in at_rest.items():
        for h in hashes:
            if h in key or h.encode() in value:
                # every record linked to a contributor expires
                assert ttl is not None, key


def test_raw_reports_expire_and_the_fused_map_keeps_no_contributor(
    tmp_path: Path, poa_base: CityBase
) -> None:
    ttl_s = 2.0
    settings = report_settings("redis", tmp_path, report_ttl_s=ttl_s)
    tokens = [new_token() for _ in ADDRESSES[:2]]
    hashes = [contributor_key(t, SECRET.encode()) for t in tokens]
    try:
        with serve(settings, poa_base) as url:
            ids = []
            for token, address in zip(tokens, ADDRESSES, strict=False):
                response = post_report(url, report_at("ttl"), token, address)
                assert response.status_code == 202
                ids.append(response.json()["report_id"])
            at_rest = dump(settings.redis_prefix)
            linked = {
                key: ttl
                for key, (value, ttl) in at_rest.items()
                if any(h in key or h.encode() in value for h in hashes)
                or any(i in key for i in ids)
            }
            raw_keys = [k for k in linked if ":report:" in k or ":by:" in k or ":pending:" in k]
            assert len([k for k in raw_keys if ":report:" in k]) == 2
            for key in raw_keys:
                ttl = linked[key]
                assert ttl is not None, key
                assert ttl <= ttl_s, key
            time.sleep(ttl_s + 1.5)  # expired, and a fusion has run since
            after = dump(settings.redis_prefix)
            for token in tokens:
                with client() as http:
                    export = http.get(f"{url}/api/v1/me/reports", headers={TOKEN_HEADER: token})
                assert export.json()["reports"] == []
        leftovers = [k for k in after if any(i in k for i in ids)]
        assert leftovers == []
        assert not [k for k in after if ":report:" in k or ":pending:" in k or ":by:" in k]
        congestion = after.get(settings.redis_prefix + congestion_state_key(CITY))
        if congestion is not None:
            for h in hashes:
                assert h.encode() not in congestion[0]
        # only the trust score (7 days) and the abuse records (≤ 1 h) still name a hash
        for key, (value, ttl) in after.items():
            if any(h in key or h.encode() in value for h in hashes):
                assert ":weight:" in key or ":tok:" in key or ":last:" in key or ":area:" in key
                assert ttl is not None
                assert ttl <= 7 * 86_400
    finally:
        delete_prefix(settings.redis_prefix)


def test_deletion_leaves_nothing_linked_to_the_token(
    settings: Settings, poa_base: CityBase
) -> None:
    token = new_token()
    contributor = contributor_key(token, SECRET.encode())
    with serve(settings, poa_base) as url:
        assert post_report(url, report_at("privacy"), token, ADDRESSES[2]).status_code == 202
        time.sleep(1.2)  # fused once: a weight exists
        deleted = httpx.delete(
            f"{url}/api/v1/me/reports", headers={TOKEN_HEADER: token}, timeout=10
        )
        assert deleted.json() == {"deleted": 1}
        at_rest = dump(settings.redis_prefix)
    linked = [
        key
        for key, (value, _) in at_rest.items()
        if contributor in key or contributor.encode() in value
    ]
    assert linked == []
