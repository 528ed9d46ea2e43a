-- Sliding one-minute window per API key (exact): drop entries older than the window, admit if under the limit.
-- KEYS[1] window sorted set; ARGV[1] limit, ARGV[2] window ms, ARGV[3] member (request id)
-- Taken only if still current (called with KEYS[2] the key's version and KEYS[3] the catalog version): ARGV[4]
-- and ARGV[5] the versions the caller checked against (a missing key reads as '').
-- With the key's concurrency slot (an even number of keys: the last is the key's in-flight set, leases scored
-- by expiry; the last two ARGV are the most in flight and the lease ms): a request the window admits while the
-- key has no free slot is not counted either, and comes back busy.
-- Returns {admitted 0|1, remaining, ms until the oldest entry leaves the window, busy 0|1};
-- {-1, 0, 0, 0} when a version differs (nothing taken).
if #KEYS >= 3 and ((redis.call('GET', KEYS[2]) or '') ~= ARGV[4] or (redis.call('GET', KEYS[3]) or '') ~= ARGV[5]) then
  return {-1, 0, 0, 0}
end
local inflight = nil
if #KEYS % 2 == 0 then inflight = KEYS[#KEYS] end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
local busy = 0
if count < limit then
  if inflight then
    redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
    if redis.call('ZCARD', inflight) >= tonumber(ARGV[#ARGV - 1]) then busy = 1 end
  end
  if busy == 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
    if inflight then
      local lease = tonumber(ARGV[#ARGV])
      redis.call('ZADD', inflight, now + lease, ARGV[3])
      redis.call('PEXPIRE', inflight, lease * 2)
    end
    count = count + 1
    admitted = 1
  end
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {admitted, math.max(limit - count, 0), reset, busy}
