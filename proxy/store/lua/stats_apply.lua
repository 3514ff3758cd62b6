-- Move one trace's contribution in the feedback counters of its creation hour.
-- KEYS: 1 counters hash ("<dim>\31<value>\31<metric>" -> integer; metrics positive,
--       negative, rating_count, rating_milli = sum of ratings x 1000), 2 contributions hash
--       (trace_id -> the state last applied), 3 the hour's admitted dimension values
--       (stats_dimensions.lua), all in the hour's hash slot.
-- ARGV: 1 trace_id, 2 state JSON from stats_state.lua (a state without vote, rating, models
--       and upstreams removes the trace from this hour), 3 expire_at (unix seconds), 4 the
--       bound on values per dimension key (later values count under "(other)").
-- The state stored is the one counted: its dimension values as admitted, so taking it away
-- later subtracts exactly what was added.
-- Returns 1 when the counters moved, 0 when a state as new or newer was applied already.
local counters, contributions, dimvals = KEYS[1], KEYS[2], KEYS[3]
local new = cjson.decode(ARGV[2])
local stored = redis.call('HGET', contributions, ARGV[1])

local function add(state, sign)
  local groups = {'all\31'}
  for _, m in ipairs(state.models or {}) do groups[#groups + 1] = 'model\31' .. m end
  for _, u in ipairs(state.upstreams or {}) do groups[#groups + 1] = 'upstream\31' .. u end
  for key, value in pairs(state.dims or {}) do groups[#groups + 1] = dimension_group(key, value) end
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
local applied = ARGV[2]
if type(new.dims) == 'table' and next(new.dims) ~= nil then
  for key, value in pairs(new.dims) do
    new.dims[key] = admitted(dimvals, key, value, tonumber(ARGV[4]))
  end
  applied = cjson.encode(new)
end
add(new, 1)
redis.call('HSET', contributions, ARGV[1], applied)
redis.call('EXPIREAT', counters, ARGV[3])
redis.call('EXPIREAT', contributions, ARGV[3])
redis.call('EXPIREAT', dimvals, ARGV[3])
return 1
