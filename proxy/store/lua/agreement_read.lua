-- Read the pairs of one (hour, score name) with the user feedback counted for each trace.
-- KEYS: 1 the pairs hash (score_pair_apply.lua), 2 the hour's stats contributions hash
--       (trace_id -> stats state: vote, rating), both in the hour's slot.
-- Returns a flat list: pair state JSON ({v, c, score}), stats state JSON or false, for every
-- trace whose latest score of that name exists (a trace without feedback comes with false).
local out = {}
local pairs_ = redis.call('HGETALL', KEYS[1])
for i = 1, #pairs_, 2 do
  local state = cjson.decode(pairs_[i + 1])
  if state.score then
    out[#out + 1] = pairs_[i + 1]
    out[#out + 1] = redis.call('HGET', KEYS[2], pairs_[i]) or false
  end
end
return out
