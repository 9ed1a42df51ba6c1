-- The policy of policy.py (multiplier, penalized, book) in Lua, so a Redis reservation
-- is one atomic round trip. Keep it a line-for-line copy of the Python.
-- KEYS[1]: hash {level, at, ep:<endpoint> = tat}; KEYS[2]: sorted set of booked starts.
-- ARGV: op (reserve | penalize | share), endpoint, global rate, endpoint rate, decrease,
-- floor, recovery seconds, cooldown, window guard.
local op = ARGV[1]
local grate, erate = tonumber(ARGV[3]), tonumber(ARGV[4])
local decrease, floor, recovery = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, window = tonumber(ARGV[8]), 1 + tonumber(ARGV[9])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '1')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local function fmt(x) return string.format('%.17g', x) end
local function multiplier(t)
  if level >= 1 then return 1 end
  local progress = math.min(1, math.max(0, (t - at) / recovery))
  return level + (1 - level) * progress
end
local share = multiplier(now)
if op == 'share' then return {fmt(now), fmt(share)} end
if op == 'penalize' then
  if now - at >= cooldown then
    redis.call('HSET', KEYS[1], 'level', fmt(math.max(floor, share * decrease)), 'at', fmt(now))
    redis.call('EXPIRE', KEYS[1], math.ceil(recovery + 60))
  end
  return {fmt(now), fmt(multiplier(now))}
end
local ggap, egap = window / (grate * share), window / (erate * share)
local field = 'ep:' .. ARGV[2]
local tat = tonumber(redis.call('HGET', KEYS[1], field) or '0')
local function first_fit(start, booked)
  for i = 2, #booked, 2 do
    local other = tonumber(booked[i])
    if other >= start + ggap then break end
    if other > start - ggap then start = other + ggap end
  end
  return start
end
local earliest = math.max(now, tat)
local booked = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. fmt(earliest - 2 * ggap), '+inf', 'WITHSCORES')
local start = first_fit(earliest, booked)
local prev = nil
for i = 2, #booked, 2 do
  local other = tonumber(booked[i])
  if other >= start then break end
  prev = other
end
if prev ~= nil and prev + ggap >= now and start - prev > 1.5 * ggap and start - prev < 2 * ggap - 1e-6 then
  start = first_fit(prev + 2 * ggap, booked)
end
redis.call('ZADD', KEYS[2], fmt(start), fmt(start))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(now - (2 * ggap + 1)))
redis.call('HSET', KEYS[1], field, fmt(start + egap))
local ttl = math.ceil(start - now + recovery + 60)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {fmt(now), fmt(start)}
