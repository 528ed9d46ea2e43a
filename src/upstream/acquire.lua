-- Lease one upstream token for a job among its model's routes, atomically across every worker process (SPEC §4).
-- Routes come grouped in tiers (highest priority first). The first tier with a free token wins: among its
-- routes with a free token, the lowest rank (0 = the job's home route, 1 = not failed yet, 2 = failed in
-- this job), then by weight; within the route, the least-loaded token. A tier whose tokens are all busy
-- (none cooling-only) makes the job wait for it: the next poll takes whichever token frees first. Tiers
-- that are all cooling, disabled or unhealthy are passed over. Routes of unhealthy channels are tried only
-- when no healthy route of any tier has a token to offer (a last resort, not a 503).
-- KEYS: for each route r in order: its channel health hash, then for each of its tokens:
--       the lease sorted set (member = job id, score = expiry ms) and the cooldown key (exists while cooling).
-- ARGV[1] job id, ARGV[2] lease ms, ARGV[3] a random number in [0, 1), ARGV[4] R = number of routes,
--   then 4 values per route: tier, rank, weight, number of tokens,
--   then the max_concurrency of every token, in KEYS order.
-- Returns {r, i, 0}: leased token i of route r (1-based)
--         {0, 0, 0}: a tier's tokens are all busy (wait and try again)
--         {-1, ms, u}: no token to offer: ms until the first cooling one is back (0 if none cools),
--                      u = number of routes passed over as unhealthy
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobId = ARGV[1]
local leaseMs = tonumber(ARGV[2])
local rand = tonumber(ARGV[3])
local R = tonumber(ARGV[4])

local routes = {}
local k, a = 1, 5 + 4 * R
for r = 1, R do
  local base = 4 + 4 * (r - 1)
  local route = { tier = tonumber(ARGV[base + 1]), rank = tonumber(ARGV[base + 2]), weight = tonumber(ARGV[base + 3]), tokens = {} }
  route.unhealthy = redis.call('HEXISTS', KEYS[k], 'unhealthy_since') == 1
  k = k + 1
  for i = 1, tonumber(ARGV[base + 4]) do
    route.tokens[i] = { lease = KEYS[k], cool = KEYS[k + 1], limit = tonumber(ARGV[a]) }
    k, a = k + 2, a + 1
  end
  routes[r] = route
end

local minCool = nil
-- a route's least-loaded free token (load -1: the job already holds it, a re-run inherits its lease)
local function examine(route)
  local best, bestLoad, warm = nil, nil, false
  for i, token in ipairs(route.tokens) do
    local cooling = redis.call('PTTL', token.cool)
    if cooling > 0 then
      if not minCool or cooling < minCool then minCool = cooling end
    else
      warm = true
      -- leases whose holder stopped renewing them (it died) no longer count
      redis.call('ZREMRANGEBYSCORE', token.lease, '-inf', now)
      if redis.call('ZSCORE', token.lease, jobId) then return i, -1, true end
      local load = redis.call('ZCARD', token.lease) / math.max(1, token.limit)
      if load < 1 and (not best or load < bestLoad) then best, bestLoad = i, load end
    end
  end
  return best, bestLoad, warm
end

local function lease(r, i)
  local key = routes[r].tokens[i].lease
  redis.call('ZADD', key, now + leaseMs, jobId)
  redis.call('PEXPIRE', key, leaseMs * 2)
  return {r, i, 0}
end

-- one pass over the tiers, on healthy routes (or, the last resort, on unhealthy ones)
local function pass(unhealthyPass)
  local skipped = 0
  local r = 1
  while r <= R do
    local tier = routes[r].tier
    local free, anyWarm, bestRank = {}, false, nil
    while r <= R and routes[r].tier == tier do
      local route = routes[r]
      if route.unhealthy ~= unhealthyPass then
        if route.unhealthy then skipped = skipped + 1 end
      else
        local i, load, warm = examine(route)
        if load == -1 then return lease(r, i) end
        if warm then anyWarm = true end
        if i then
          free[#free + 1] = r
          route.pick = i
          if not bestRank or route.rank < bestRank then bestRank = route.rank end
        end
      end
      r = r + 1
    end
    if #free > 0 then
      local total, candidates = 0, {}
      for _, c in ipairs(free) do
        if routes[c].rank == bestRank then
          candidates[#candidates + 1] = c
          total = total + routes[c].weight
        end
      end
      local chosen = candidates[1]
      if total > 0 then
        local point = rand * total
        for _, c in ipairs(candidates) do
          point = point - routes[c].weight
          if point < 0 then
            chosen = c
            break
          end
        end
      end
      return lease(chosen, routes[chosen].pick)
    end
    if anyWarm then return {0, 0, 0} end
  end
  return skipped
end

local result = pass(false)
if type(result) == 'table' then return result end
local unhealthy = result
if unhealthy > 0 then
  result = pass(true)
  if type(result) == 'table' then return result end
end
return {-1, minCool or 0, unhealthy}
