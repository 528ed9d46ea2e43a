-- Keep a lease while its call runs. KEYS[1] lease set; ARGV[1] job id, ARGV[2] lease ms, ARGV[3] the token's max_concurrency.
-- A lease is gone while its call still runs when its holder stalled (stopped, swapped out, a long pause) for
-- longer than a lease lasts: the pool dropped it as a dead holder's. The call is counted again if the token has
-- room for it; if others filled the token meanwhile, the holder must stop the call rather than run beyond the
-- token's max_concurrency (SPEC §4) for as long as the call lasts.
-- Returns 1: held (renewed or counted again), 0: lost and the token is full (stop the call).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
