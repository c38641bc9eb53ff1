"""The Lua scripts of the Redis backend's own atomic steps: counters with a TTL, the writer
locks, and a (fenced) publish on the event stream."""

# Adds to a counter and, if it has no expiry yet (just created), sets one: INCRBY alone
# followed by PEXPIRE from the client could leave an immortal counter if the client died
# in between, and a rate limit would then block forever.
INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

ACQUIRE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Compare-and-act: only the holder may extend or delete, so a writer whose lock expired and
# was taken by another cannot free or prolong the new holder's lock.
REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Next seq = 1 + max(counter, newest id on the stream), so losing either key alone does not
# make XADD fail or seqs repeat. XADD runs before the counter moves: if it fails, the script
# stops with nothing written, and seqs stay gap-free (subscribers treat a gap as lost events).
# Fenced (ARGV[6] not empty): nothing is written unless the lock KEYS[3] holds ARGV[6]. State
# keys KEYS[4..] get ARGV[7..] in the same step, before the event.
PUBLISH = """
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[6] then
  return -1
end
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 3])
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then
  local on_stream = tonumber(string.match(newest[1][1], '^(%d+)-'))
  if on_stream > last then last = on_stream end
end
local seq = last + 1
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq),
  'type', ARGV[2], 'city', ARGV[3], 'at', ARGV[4], 'payload', ARGV[5])
redis.call('SET', KEYS[2], string.format('%d', seq))
return seq
"""
