-- Record one finished span into its trace, atomically.
-- KEYS: 1 trace hash, 2 spans hash, 3 attributes hash, 4 tags set, 5 models set,
--       6-8 (feedback keys, untouched here), 9 the trace's set of index key names
-- ARGV: 1 trace_id, 2 span_id, 3 span JSON, 4 started_ms, 5 now_ms, 6 retention_seconds,
--       7 name, 8 session_id, 9 user_id, 10 model, 11 number of attribute pairs N,
--       12 number of tags T, 13 number of index key names I, 14 the upstream index name
--       prefix, then N attribute key / JSON value pairs, T tags, I index key names, then the
--       span's cost in pico-USD and its total tokens ('' = unknown; summed into the trace's
--       cost_pusd and total_tokens fields, left unset while nothing is known), then the
--       number of [stats] dimension keys D and the D keys, then the implicit-feedback
--       arguments (below).
-- Returns {new, created_ms, stats state JSON or false, the trace's cost_pusd or false, the
-- trace's dimension values JSON (after this span's attributes), 1 when this span is the
-- trace's first, regeneration or false, index key names to score at created_ms...}: new is
-- 1, or 0 for a span already stored (a replay changes nothing but may re-score, which is
-- idempotent). The stats state (stats_state.lua) comes back when the trace has feedback and
-- this span put it in a new index (a model or upstream to count it under), changed a
-- dimension's value, or moved its creation time (to another hour's counters); a replay
-- returns it unchanged, and the regeneration this span recorded when first stored. The
-- names are this span's indexes, or every index of the trace when this span moved the
-- trace's creation time back, so that every index scores the trace by its creation time.
-- Implicit feedback: after the D dimension keys come the input hash of the call ('' = none),
-- the regeneration window (ms), the time of this write (ISO), the implicit index name prefix
-- and the span's upstream. A new span whose input equals the trace's latest earlier span's
-- within the window records "regenerated" on that earlier span (span feedback hash, field
-- "i\31<span>\31regenerated"), lists the trace in the regenerated index, and returns
-- {earlier span_id, its model, its upstream, signal JSON} in the seventh slot (else false);
-- it also notes the earlier span in the trace hash ('regen:<span>'), so a replay of this
-- span returns the same regeneration again (its count is idempotent, consumers dedupe).
local trace, spans, attrs, tags, models, indexes =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[9]
local n, t, m = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local first_index = 15 + 2 * n + t
local own = {}
for i = first_index, first_index + m - 1 do own[#own + 1] = ARGV[i] end
local span_cost, span_tokens = ARGV[first_index + m], ARGV[first_index + m + 1]
local dims, is_dim = {}, {}
for i = first_index + m + 3, first_index + m + 2 + tonumber(ARGV[first_index + m + 2]) do
  dims[#dims + 1] = ARGV[i]
  is_dim[ARGV[i]] = true
end

local after = first_index + m + 3 + #dims

-- A replay: the regeneration this span recorded when first stored ('regen:<span>' in the
-- trace hash names the earlier span), so the second step can count and publish it again.
local function recorded_regeneration()
  local prev = redis.call('HGET', trace, 'regen:' .. ARGV[2])
  if not prev or not ARGV[after + 3] then return false end
  local p_span, p_model, p_upstream = string.match(prev, '^([^\31]*)\31([^\31]*)\31(.*)$')
  local signal = redis.call('HGET', KEYS[8], 'i\31' .. p_span .. '\31regenerated')
  if not signal then return false end
  own[#own + 1] = ARGV[after + 3] .. 'regenerated'
  return {p_span, p_model, p_upstream, signal}
end

if redis.call('HSETNX', spans, ARGV[2], ARGV[3]) == 0 then
  local known = redis.call('HGET', trace, 'created_ms')
  if not known then return {0, 0, false, false, false, 0, false} end
  local regen = recorded_regeneration()
  local result = {0, known, stats_state(trace, attrs, models, indexes, ARGV[14], false, nil, dims),
                  redis.call('HGET', trace, 'cost_pusd') or false, false, 0, regen}
  for _, k in ipairs(own) do result[#result + 1] = k end
  return result
end
local started, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local created = tonumber(redis.call('HGET', trace, 'created_ms'))
local moved_back, previous_created = false, created
if created == nil or started < created then
  moved_back = created ~= nil
  created = started
  redis.call('HSET', trace, 'created_ms', ARGV[4])
end
local updated = tonumber(redis.call('HGET', trace, 'updated_ms'))
if updated == nil or now > updated then
  redis.call('HSET', trace, 'updated_ms', ARGV[5])
end
redis.call('HSET', trace, 'trace_id', ARGV[1])
local first_span = redis.call('HINCRBY', trace, 'span_count', 1) == 1 and 1 or 0
if span_cost ~= '' then redis.call('HINCRBY', trace, 'cost_pusd', span_cost) end
if span_tokens ~= '' then redis.call('HINCRBY', trace, 'total_tokens', span_tokens) end
for i, field in ipairs({'name', 'session_id', 'user_id'}) do
  if ARGV[6 + i] ~= '' then
    redis.call('HSET', trace, field, ARGV[6 + i])
  end
end
if ARGV[10] ~= '' then
  redis.call('SADD', models, ARGV[10])
end
local i = 15
local dims_changed = false  -- a dimension's value moved: the feedback counts must follow
for _ = 1, n do
  if is_dim[ARGV[i]] and redis.call('HGET', attrs, ARGV[i]) ~= ARGV[i + 1] then
    dims_changed = true
  end
  redis.call('HSET', attrs, ARGV[i], ARGV[i + 1]); i = i + 2
end
for _ = 1, t do redis.call('SADD', tags, ARGV[i]); i = i + 1 end
local new_indexes = 0
if m > 0 then new_indexes = redis.call('SADD', indexes, unpack(own)) end

local function regenerated(digest, window_ms, at, prefix, upstream)
  local field = 'input:' .. digest
  local value = ARGV[2] .. '\31' .. ARGV[4] .. '\31' .. ARGV[10] .. '\31' .. upstream
  local prev = redis.call('HGET', trace, field)
  if not prev then
    redis.call('HSET', trace, field, value)
    return false
  end
  local p_span, p_started, p_model, p_upstream =
    string.match(prev, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$')
  p_started = tonumber(p_started)
  if started < p_started then return false end  -- a late older span: the newer one stays
  redis.call('HSET', trace, field, value)
  if started - p_started > window_ms or p_span == ARGV[2] then return false end
  local signal = cjson.encode({signal = 'regenerated', at = at, by_span_id = ARGV[2]})
  if redis.call('HSETNX', KEYS[8], 'i\31' .. p_span .. '\31regenerated', signal) == 0 then
    return false
  end
  redis.call('HSET', trace, 'regen:' .. ARGV[2],
             p_span .. '\31' .. p_model .. '\31' .. p_upstream)
  local name = prefix .. 'regenerated'
  redis.call('SADD', indexes, name)
  own[#own + 1] = name
  return {p_span, p_model, p_upstream, signal}
end

local regen = false
if ARGV[after] and ARGV[after] ~= '' then
  regen = regenerated(ARGV[after], tonumber(ARGV[after + 1]), ARGV[after + 2],
                      ARGV[after + 3], ARGV[after + 4])
end

local expire_at = math.floor(created / 1000) + tonumber(ARGV[6])
for _, key in ipairs(KEYS) do
  redis.call('EXPIREAT', key, expire_at)
end
local stats = false
if moved_back or new_indexes > 0 or dims_changed then
  stats = stats_state(trace, attrs, models, indexes, ARGV[14], true,
                      moved_back and previous_created or nil, dims)
end
-- the keys may be gone already if created is past retention
local result = {1, created, stats, redis.call('HGET', trace, 'cost_pusd') or false,
                #dims > 0 and cjson.encode(dimension_values(attrs, dims)) or false, first_span,
                regen}
local names = own
if moved_back then names = redis.call('SMEMBERS', indexes) end
if moved_back and #names == 0 then names = own end
for _, k in ipairs(names) do result[#result + 1] = k end
return result
