-- Move one trace's contribution in the feedback counters of its creation hour.
-- KEYS: 1 counters hash ("<dim>\31<value>\31<metric>" -> integer; metrics positive,
--       negative, rating_count, rating_milli = sum of ratings x 1000), 2 contributions hash
--       (trace_id -> the state last applied), both in the hour's hash slot.
-- ARGV: 1 trace_id, 2 state JSON from stats_state.lua (a state without vote, rating, models
--       and upstreams removes the trace from this hour), 3 expire_at (unix seconds).
-- Returns 1 when the counters moved, 0 when a state as new or newer was applied already.
local counters, contributions = KEYS[1], KEYS[2]
local new = cjson.decode(ARGV[2])
local stored = redis.call('HGET', contributions, ARGV[1])

local function add(state, sign)
  local groups = {'all\31'}
  for _, m in ipairs(state.models or {}) do groups[#groups + 1] = 'model\31' .. m end
  for _, u in ipairs(state.upstreams or {}) do groups[#groups + 1] = 'upstream\31' .. u end
  local rating = tonumber(state.rating)
  for _, group in ipairs(groups) do
    if state.vote == 'positive' or state.vote == 'negative' then
      redis.call('HINCRBY', counters, group .. '\31' .. state.vote, sign)
    end
    if rating then  -- the sum in thousandths: integer moves stay exact (ratings like 2.5)
      redis.call('HINCRBY', counters, group .. '\31rating_count', sign)
      redis.call('HINCRBY', counters, group .. '\31rating_milli', sign * math.floor(rating * 1000 + 0.5))
    end
  end
end

if stored then
  local old = cjson.decode(stored)
  if old.v >= new.v then return 0 end
  add(old, -1)
end
add(new, 1)
redis.call('HSET', contributions, ARGV[1], ARGV[2])
redis.call('EXPIREAT', counters, ARGV[3])
redis.call('EXPIREAT', contributions, ARGV[3])
return 1
