-- Give a lease back and record the call's outcome for cooldowns.
-- KEYS[1] lease set, KEYS[2] consecutive-failure counter, KEYS[3] cooldown key, KEYS[4] backoff level
-- ARGV[1] job id, ARGV[2] outcome: ok | fail | ratelimited | neutral, ARGV[3] retry-after ms from upstream (0 = none),
-- ARGV[4] failures before a cooldown, ARGV[5] base backoff ms, ARGV[6] max backoff ms
-- Returns the cooldown ms applied (0 = none).
redis.call('ZREM', KEYS[1], ARGV[1])
local outcome = ARGV[2]
-- neutral: the call says nothing about the token (cancelled, timed out, a bug of ours)
if outcome == 'neutral' then return 0 end
if outcome == 'ok' then
  redis.call('DEL', KEYS[2], KEYS[4])
  return 0
end
if outcome == 'fail' then
  local failures = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], 300000)
  if failures < tonumber(ARGV[4]) then return 0 end
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
return cool
