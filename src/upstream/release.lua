-- Give a lease back and record the call's outcome for the token's cooldowns and the channel's health.
-- KEYS[1] lease set, KEYS[2] consecutive-failure counter, KEYS[3] cooldown key, KEYS[4] backoff level,
-- KEYS[5] the channel's health hash (failures in a row, unhealthy_since, last_error, last_error_at)
-- ARGV[1] job id, ARGV[2] outcome: ok | fail | ratelimited | neutral, ARGV[3] retry-after ms from upstream (0 = none),
-- ARGV[4] failures before a cooldown, ARGV[5] base backoff ms, ARGV[6] max backoff ms,
-- ARGV[7] channel failures in a row that make it unhealthy, ARGV[8] what went wrong (for fail and ratelimited)
-- Returns {cooldown ms applied (0 = none), channel health change: 1 became unhealthy, -1 healthy again, 0 none}.
redis.call('ZREM', KEYS[1], ARGV[1])
local outcome = ARGV[2]
-- neutral: the call says nothing about the token (cancelled, timed out, a bug of ours)
if outcome == 'neutral' then return {0, 0} end
local health = KEYS[5]
if outcome == 'ok' then
  redis.call('DEL', KEYS[2], KEYS[4])
  -- the channel answered: its failure row ends, and an unhealthy channel is back
  local state = redis.call('HMGET', health, 'unhealthy_since', 'failures')
  if state[1] then redis.call('HDEL', health, 'unhealthy_since') end
  if state[1] or (state[2] and state[2] ~= '0') then redis.call('HSET', health, 'failures', 0) end
  return {0, state[1] and -1 or 0}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', health, 'last_error', ARGV[8], 'last_error_at', now)
local change = 0
if outcome == 'fail' then
  local inRow = redis.call('HINCRBY', health, 'failures', 1)
  if inRow >= tonumber(ARGV[7]) and redis.call('HSETNX', health, 'unhealthy_since', now) == 1 then change = 1 end
  local failures = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 300000)
  if failures < tonumber(ARGV[4]) then return {0, change} end
  redis.call('DEL', KEYS[2])
end
-- the upstream's Retry-After wins; otherwise exponential backoff, one level up per cooldown in a row
local cool = tonumber(ARGV[3])
if cool <= 0 then
  local level = redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], 600000)
  cool = math.min(tonumber(ARGV[5]) * 2 ^ (level - 1), tonumber(ARGV[6]))
end
cool = math.max(1, math.floor(cool))
redis.call('SET', KEYS[3], outcome, 'PX', cool)
return {cool, change}
