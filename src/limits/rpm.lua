-- Sliding one-minute window per API key (exact): drop entries older than the window, admit if under the limit.
-- KEYS[1] window sorted set; ARGV[1] limit, ARGV[2] window ms, ARGV[3] member (request id)
-- Taken only if still current (called with 3 keys): KEYS[2] the key's version, KEYS[3] the catalog version,
-- ARGV[4] and ARGV[5] the versions the caller checked against (a missing key reads as '').
-- Returns {admitted 0|1, remaining, ms until the oldest entry leaves the window}; {-1, 0, 0} when a version
-- differs (nothing taken).
if #KEYS == 3 and ((redis.call('GET', KEYS[2]) or '') ~= ARGV[4] or (redis.call('GET', KEYS[3]) or '') ~= ARGV[5]) then
  return {-1, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  count = count + 1
  admitted = 1
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {admitted, math.max(limit - count, 0), reset}
