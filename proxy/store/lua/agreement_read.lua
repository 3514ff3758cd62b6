-- Agreement figures of one (hour, score name), computed where the data is.
-- KEYS: 1 the pairs hash (score_pair_apply.lua: trace_id -> "<v>\31<created_ms>\31s\31<label>
--       \31<value>", or "<v>\31<created_ms>\31x" once the trace has no such score), 2 the
--       hour's stats contributions hash (trace_id -> stats state JSON with vote and rating),
--       both in the hour's slot.
-- ARGV: 1 since_ms, 2 until_ms (the trace's creation time, inclusive), 3 threshold (a score
--       without a label passes at or above it), then the labels that pass.
-- Returns {positive&pass, positive&fail, negative&pass, negative&fail, then rating, value
-- pairs (as strings) of the traces that have both}. The stats state is read with patterns, not
-- decoded: stats_state.lua writes it with cjson, whose "vote" and "rating" never nest.
local since, upto, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local passing = {}
for i = 4, #ARGV do passing[ARGV[i]] = true end
local cells = {positive = {0, 0}, negative = {0, 0}}
local ratings = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local created, kind, label, value =
    string.match(entries[i + 1], '^%d+\31(%d+)\31(%a)\31?([^\31]*)\31?(.*)$')
  created = tonumber(created)
  if kind == 's' and created >= since and created <= upto then
    local state = redis.call('HGET', KEYS[2], entries[i])
    if state then
      local number = tonumber(value)
      local passed
      if label ~= '' then passed = passing[label] == true
      else passed = number ~= nil and number >= threshold end
      local row = cells[string.match(state, '"vote":"(%a+)"') or '']
      if row then
        if passed then row[1] = row[1] + 1 else row[2] = row[2] + 1 end
      end
      local rating = string.match(state, '"rating":([-%d%.eE+]+)')
      if rating and number then
        ratings[#ratings + 1] = rating
        ratings[#ratings + 1] = value
      end
    end
  end
end
local out = {cells.positive[1], cells.positive[2], cells.negative[1], cells.negative[2]}
for _, item in ipairs(ratings) do out[#out + 1] = item end
return out
