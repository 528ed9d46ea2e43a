-- Lease one upstream token of a channel, atomically across every worker process (SPEC §4).
-- KEYS: for each candidate token i, KEYS[2i-1] = its lease sorted set (member = job id, score = expiry ms),
--       KEYS[2i] = its cooldown key (exists with a TTL while cooling).
-- ARGV[1] job id, ARGV[2] lease ms, ARGV[2+i] max_concurrency of token i.
-- Returns {i, 0}: leased token i (fewest leases for its limit, earliest in the given order on a tie)
--         {0, 0}: every non-cooling token is at its limit (wait and try again)
--         {-1, ms}: every token is cooling; ms until the first one is back
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobId = ARGV[1]
local leaseMs = tonumber(ARGV[2])
local best, bestLoad, minCool = nil, nil, nil
local anyWarm = false
for i = 1, #KEYS / 2 do
  local leaseKey, coolKey = KEYS[2 * i - 1], KEYS[2 * i]
  local cooling = redis.call('PTTL', coolKey)
  if cooling > 0 then
    if not minCool or cooling < minCool then minCool = cooling end
  else
    anyWarm = true
    -- leases whose holder stopped renewing them (it died) no longer count
    redis.call('ZREMRANGEBYSCORE', leaseKey, '-inf', now)
    if redis.call('ZSCORE', leaseKey, jobId) then
      -- a re-run of this job inherits its own lease: refresh it rather than take a second one
      best, bestLoad = i, -1
      break
    end
    local load = redis.call('ZCARD', leaseKey) / tonumber(ARGV[2 + i])
    if load < 1 and (not best or load < bestLoad) then best, bestLoad = i, load end
  end
end
if best then
  local leaseKey = KEYS[2 * best - 1]
  redis.call('ZADD', leaseKey, now + leaseMs, jobId)
  redis.call('PEXPIRE', leaseKey, leaseMs * 2)
  return {best, 0}
end
if anyWarm then return {0, 0} end
return {-1, minCool or 0}
