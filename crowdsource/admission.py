"""One report's abuse checks and storing, atomically and in one store round trip.

:meth:`ReportIntake.admit` does what :meth:`crowdsource.abuse.AbuseGuard.check` followed by
:meth:`crowdsource.repository.ReportRepository.add` do — same keys, same values, same
expiries, same rules in the same order — as one :class:`~correspondance.store.StoreScript`:

1. count the attempt against the network's minute and hour windows; refuse (429) if over;
2. count it against the token's minute and hour windows and its area cell; refuse if over;
3. refuse an implausible sequence (too far from the token's last position for the time
   between them), else remember this position;
4. ignore an exact duplicate (same contributor, edges, kind and level within 60 s);
5. store the report, its contributor index and pending entry, then the duplicate marker.

Before all of it, a report whose id is stored already is answered "stored": the script is
idempotent, so the Redis store repeats it when the connection broke mid-call (Redis killed
after running it, before answering), and the report is stored and counted once.

On Redis that is one ``EVALSHA`` instead of about ten sequential commands, and nothing can
interleave with it (two concurrent copies of one report cannot both pass the duplicate
check). The API acknowledges a report only after :meth:`ReportIntake.admit` returned, i.e.
after Redis executed the script (and, with ``appendfsync always``, fsynced its writes).
"""

from __future__ import annotations

import math
import time

from correspondance.geo import EARTH_RADIUS_M, distance_m
from correspondance.store import ScriptResult, StateStore, StoreError, StoreScript
from crowdsource.abuse import AbuseGuard
from crowdsource.models import Report
from crowdsource.repository import DUPLICATE_WINDOW_S, ReportRepository

STORED, DUPLICATE, LIMITED, IMPLAUSIBLE = 1, 0, 2, 3

# KEYS: 1 addr:60  2 addr:3600  3 tok:60  4 tok:3600  5 area  6 last  7 dedup  8 report
#       9 by  10 pending
# ARGV: 1-5 limits (network/min, network/h, token/min, token/h, token/area)
#       6-8 windows ms (minute, hour, area)
#       9-11 lat, lon, observed_at  12 max speed m/s  13 slack m  14 position to remember
#       15 its expiry ms  16 duplicate window s  17 report id  18 report JSON
#       19 report JSON with network hash  20 raw TTL ms  21 pending bucket expiry ms
#       22 duplicate marker  23 its expiry ms
_INTAKE_LUA = """
if redis.call('EXISTS', KEYS[8]) == 1 then return {1} end
local function count(key, window)
  local n = redis.call('INCR', key)
  if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, window) end
  return n
end
local n1 = count(KEYS[1], ARGV[6])
local n2 = count(KEYS[2], ARGV[7])
if n1 > tonumber(ARGV[1]) then return {2, 1, redis.call('PTTL', KEYS[1])} end
if n2 > tonumber(ARGV[2]) then return {2, 2, redis.call('PTTL', KEYS[2])} end
local n3 = count(KEYS[3], ARGV[6])
local n4 = count(KEYS[4], ARGV[7])
local n5 = count(KEYS[5], ARGV[8])
if n3 > tonumber(ARGV[3]) then return {2, 3, redis.call('PTTL', KEYS[3])} end
if n4 > tonumber(ARGV[4]) then return {2, 4, redis.call('PTTL', KEYS[4])} end
if n5 > tonumber(ARGV[5]) then return {2, 5, redis.call('PTTL', KEYS[5])} end
local lat, lon, observed = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local last = redis.call('GET', KEYS[6])
if last then
  local a, b, c = string.match(last, '^([^,]+),([^,]+),([^,]+)$')
  local plat, plon, pat = tonumber(a), tonumber(b), tonumber(c)
  local elapsed = math.abs(observed - pat)
  local reach = tonumber(ARGV[12]) * elapsed + tonumber(ARGV[13])
  local p1, p2 = math.rad(plat), math.rad(lat)
  local dp, dl = p2 - p1, math.rad(lon - plon)
  local h = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
  local gap = 2 * EARTH_RADIUS_M * math.asin(math.min(1.0, math.sqrt(h)))
  if gap > reach then
    return {3, string.format('%.17g', gap), string.format('%.17g', elapsed)}
  end
end
redis.call('SET', KEYS[6], ARGV[14], 'PX', ARGV[15])
local previous = redis.call('GET', KEYS[7])
if previous and math.abs(tonumber(previous) - observed) < tonumber(ARGV[16]) then
  return {0}
end
redis.call('SET', KEYS[8], ARGV[18], 'PX', ARGV[20])
redis.call('SADD', KEYS[9], ARGV[17])
redis.call('HSET', KEYS[10], ARGV[17], ARGV[19])
redis.call('PEXPIRE', KEYS[9], ARGV[20])
redis.call('PEXPIRE', KEYS[10], ARGV[21])
redis.call('SET', KEYS[7], ARGV[22], 'PX', ARGV[23])
return {1}
""".replace("EARTH_RADIUS_M", repr(EARTH_RADIUS_M))  # the one earth model


async def _intake_local(store: StateStore, keys: list[str], args: list[bytes]) -> ScriptResult:
    """The same script over the store's methods (the in-process backend runs this)."""

    async def remaining_ms(key: str) -> int:
        left = await store.ttl(key)
        return -1 if left is None else math.ceil(left * 1000)

    if await store.exists(keys[7]):  # this very report (its random id) is stored: a retry
        return [STORED]
    limits = [int(a) for a in args[:5]]
    minute_s, hour_s, area_s = (int(a) / 1000 for a in args[5:8])
    windows = (minute_s, hour_s, minute_s, hour_s, area_s)
    counts = [await store.incr(keys[i], ttl_s=windows[i]) for i in (0, 1)]
    for i in (0, 1):
        if counts[i] > limits[i]:
            return [LIMITED, i + 1, await remaining_ms(keys[i])]
    counts += [await store.incr(keys[i], ttl_s=windows[i]) for i in (2, 3, 4)]
    for i in (2, 3, 4):
        if counts[i] > limits[i]:
            return [LIMITED, i + 1, await remaining_ms(keys[i])]
    lat, lon, observed, max_speed, slack = (float(a) for a in args[8:13])
    last = await store.get(keys[5])
    if last is not None:
        plat, plon, pat = (float(v) for v in last.decode().split(","))
        elapsed = abs(observed - pat)
        gap = distance_m(plat, plon, lat, lon)
        if gap > max_speed * elapsed + slack:
            return [IMPLAUSIBLE, repr(gap).encode(), repr(elapsed).encode()]
    await store.set(keys[5], args[13], int(args[14]) / 1000)
    previous = await store.get(keys[6])
    if previous is not None and abs(float(previous) - observed) < float(args[15]):
        return [DUPLICATE]
    report_id, raw_ttl_s = args[16].decode(), int(args[19]) / 1000
    await store.set(keys[7], args[17], raw_ttl_s)
    await store.sadd(keys[8], report_id)
    await store.hset(keys[9], {report_id: args[18]})
    await store.expire(keys[8], raw_ttl_s)
    await store.expire(keys[9], int(args[20]) / 1000)
    await store.set(keys[6], args[21], int(args[22]) / 1000)
    return [STORED]


INTAKE_SCRIPT = StoreScript("report-intake", _INTAKE_LUA, _intake_local, idempotent=True)
"""Idempotent: a report whose key (its random ``report_id``) exists is answered "stored"
before anything is counted, so the store may run it again when the connection broke after
it ran (the API acknowledges the same id once; nothing is counted twice). An attempt that
was refused (limited, implausible, duplicate) stores nothing and is evaluated afresh by a
repeat: its rate counters may then count it twice, which only tightens a limit the
client had already met."""


def _ms(seconds: float) -> int:
    """Milliseconds as the store rounds a TTL (up, at least 1)."""
    return max(1, math.ceil(seconds * 1000))


class ReportIntake:
    """Checks and stores reports of one city in one atomic store call each.

    Parameters
    ----------
    guard : AbuseGuard
        The city's abuse rules (limits, secret).
    repository : ReportRepository
        The city's reports (same store and city as the guard).
    """

    def __init__(self, guard: AbuseGuard, repository: ReportRepository) -> None:
        if guard.store is not repository.store or guard.city != repository.city:
            raise ValueError("the guard and the repository must share one store and city")
        self.guard = guard
        self.repository = repository

    async def admit(self, report: Report, client_address: str, now: float) -> bool:
        """Apply every abuse rule to a report and store it unless it is a duplicate.

        Exactly what ``await guard.check(contributor, client_address, report, now)`` then
        ``await repository.add(report)`` do, atomically.

        Parameters
        ----------
        report : Report
            A matched report of this city (its ``contributor`` is the keyed token hash).
        client_address : str
            The client's IP address (hashed here; never stored as such).
        now : float
            Unix seconds (kept for the interface of :meth:`AbuseGuard.check`; the rules
            use the report's own times).

        Returns
        -------
        bool
            ``True`` once the store holds it; ``False`` for an exact duplicate (ignored).

        Raises
        ------
        RateLimitedError
            A per-network, per-token or per-area limit is exceeded (``retry_after_s``:
            when that window ends).
        ReportRejectedError
            ``implausible_sequence``.
        ValueError
            If the report belongs to another city.
        StoreUnavailableError
            If the store cannot be reached: nothing may be acknowledged.
        """
        guard, repository, limits = self.guard, self.repository, self.guard.limits
        if report.city != repository.city:
            raise ValueError(f"report of {report.city} given to the {repository.city} intake")
        contributor = report.contributor
        network_keys = guard.network_keys(client_address)
        bucket = repository.bucket_of(report.received_at)
        pending_expiry_s = max(
            bucket * repository.bucket_s + repository.keep_s - time.time(), 0.001
        )
        keys = [
            *network_keys,
            *guard.token_keys(contributor),
            guard.area_key(contributor, report.lat, report.lon),
            guard.last_key(contributor),
            repository.dedup_key(report),
            repository.report_key(report.report_id),
            repository.contributor_key(contributor),
            repository.pending_key(bucket),
        ]
        args: list[str | bytes | int | float] = [
            limits.address_per_minute,
            limits.address_per_hour,
            limits.token_per_minute,
            limits.token_per_hour,
            limits.token_per_area,
            _ms(60),
            _ms(3600),
            _ms(limits.area_window_s),
            report.lat,
            report.lon,
            report.observed_at,
            limits.max_speed_m_s,
            limits.position_slack_m,
            guard.position_value(report),
            _ms(limits.sequence_memory_s),
            DUPLICATE_WINDOW_S,
            report.report_id,
            report.to_json(),
            report.to_json(with_origin=True),
            _ms(repository.raw_ttl_s),
            _ms(pending_expiry_s),
            repr(report.observed_at),
            _ms(2 * DUPLICATE_WINDOW_S),
        ]
        outcome = await guard.store.run_script(INTAKE_SCRIPT, keys, args)
        match outcome:
            case [1]:
                return True
            case [0]:
                return False
            case [2, int(which), int(left_ms)] if 1 <= which <= 5:
                raise guard.limited(which, None if left_ms < 0 else left_ms / 1000)
            case [3, bytes(gap), bytes(elapsed)]:
                raise guard.implausible(float(gap), float(elapsed))
        raise StoreError(f"report intake: unexpected answer {outcome!r}")
