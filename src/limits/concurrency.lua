-- Take one of an API key's concurrent-request slots, exact across every web process (SPEC §4).
-- KEYS[1] the key's in-flight sorted set (member = request id, score = lease expiry ms)
-- ARGV[1] max concurrent requests, ARGV[2] lease ms, ARGV[3] request id
-- Returns 1 when the slot is taken, 0 when the key already has that many requests in flight.
-- A slot whose web process died stops being renewed and no longer counts once its lease expires.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
