-- Merge one feedback event into its trace, atomically.
-- KEYS: 1 trace hash, 2 spans hash, 3 attributes hash, 4 tags set, 5 models set,
--       6 feedback hash (event key -> event JSON), 7 feedback order zset (event key -> seq),
--       8 span feedback hash ("a\31<span>\31<key>" -> JSON value, "t\31<span>\31<tag>" -> 1),
--       9 the trace's set of index key names
-- ARGV: 1 trace_id, 2 event key, 3 event JSON, 4 now_ms, 5 retention_seconds,
--       6 max events (0 = no cap: a replay of feedback already answered "queued"),
--       7 target span_id ('' = the trace), 8 user_feedback JSON ('' = none),
--       9 N attribute pairs, 10 M tags, 11 D deleted attribute keys, 12 E deleted tags,
--       13 I index key names, 14 the annotation index name prefix, 15 the event's received_at,
--       16 the upstream index name prefix, 17 the tag index name prefix,
--       then N key / JSON value pairs, M tags, D keys, E tags, I index key names, then the
--       number of [stats] dimension keys and the keys (stats_state.lua).
-- Returns {status, created_ms, annotation_status, previous event JSON or false, stats state
-- JSON or false (stats_state.lua), {trace tags this event removed}, index key names to score
-- at created_ms...}; a removed tag's index name leaves the trace's set of index names here,
-- its index entry is the caller's to drop (another slot); status is 1 (new event), 2 (same event key, newer
-- content: replaced), 3 (the same event again, or an older one than stored: nothing changed,
-- but the index names come back so a replay can finish a step that failed) or -1 (history
-- full: nothing changed).
local trace, attrs, tags = KEYS[1], KEYS[3], KEYS[4]
local events, order, span_fb, indexes = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local key, span = ARGV[2], ARGV[7]
local n, m, d, e = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local first_name = 18 + 2 * n + m + d + e
local names = {}
local removed = {}  -- trace-level tags this event took away
for i = first_name, first_name + tonumber(ARGV[13]) - 1 do names[#names + 1] = ARGV[i] end
local first_dim = first_name + tonumber(ARGV[13]) + 1
local dims = {}
for i = first_dim, first_dim + tonumber(ARGV[first_dim - 1]) - 1 do dims[#dims + 1] = ARGV[i] end

local function finish(status, previous)
  local created = redis.call('HGET', trace, 'created_ms')
  local annotation = redis.call('HGET', trace, 'annotation_status')
  if annotation then names[#names + 1] = ARGV[14] .. annotation end
  for i = 1, #names, 500 do  -- SADD in chunks: unpack has a stack limit
    redis.call('SADD', indexes, unpack(names, i, math.min(i + 499, #names)))
  end
  if created then
    local expire_at = math.floor(tonumber(created) / 1000) + tonumber(ARGV[5])
    for _, k in ipairs(KEYS) do redis.call('EXPIREAT', k, expire_at) end
  end
  local stats = stats_state(trace, attrs, KEYS[5], indexes, ARGV[16], status ~= 3, nil, dims)
  local result = {status, created or 0, annotation or false, previous or false, stats, removed}
  for _, name in ipairs(names) do result[#result + 1] = name end
  return result
end

local previous = redis.call('HGET', events, key)
if previous == ARGV[3] then
  return finish(3, false)
end
if previous and cjson.decode(previous).received_at > ARGV[15] then
  return finish(3, false)  -- a stored newer version of this event wins over a late older one
end
if not previous then
  local cap = tonumber(ARGV[6])
  if cap > 0 and redis.call('ZCARD', order) >= cap then
    return {-1, 0, false, false, false}
  end
  local seq = redis.call('HINCRBY', trace, 'feedback_seq', 1)
  redis.call('ZADD', order, seq, key)
end
redis.call('HSET', events, key, ARGV[3])

local function set_attr(k, v)
  if span == '' then redis.call('HSET', attrs, k, v)
  else redis.call('HSET', span_fb, 'a\31' .. span .. '\31' .. k, v) end
end
local function del_attr(k)
  if span == '' then redis.call('HDEL', attrs, k)
  else redis.call('HDEL', span_fb, 'a\31' .. span .. '\31' .. k) end
end
local function add_tag(t)
  if span == '' then redis.call('SADD', tags, t)
  else redis.call('HSET', span_fb, 't\31' .. span .. '\31' .. t, '1') end
end
local function del_tag(t)
  if span ~= '' then
    redis.call('HDEL', span_fb, 't\31' .. span .. '\31' .. t)
  elseif redis.call('SREM', tags, t) == 1 then
    removed[#removed + 1] = t
    redis.call('SREM', indexes, ARGV[17] .. t)
  end
end

local i = 18
for _ = 1, n do set_attr(ARGV[i], ARGV[i + 1]); i = i + 2 end
for _ = 1, m do add_tag(ARGV[i]); i = i + 1 end
for _ = 1, d do del_attr(ARGV[i]); i = i + 1 end
for _ = 1, e do del_tag(ARGV[i]); i = i + 1 end

-- The thumbs tags arrive with the event's tags and deleted tags (proxy.core.tags owns the
-- mapping). A thumbs-down puts the trace in the review queue.
if ARGV[8] == '"negative"' then
  redis.call('HSETNX', trace, 'annotation_status', 'empty')
end

redis.call('HSET', trace, 'trace_id', ARGV[1])
redis.call('HSETNX', trace, 'created_ms', ARGV[4])
local updated = tonumber(redis.call('HGET', trace, 'updated_ms'))
if updated == nil or tonumber(ARGV[4]) > updated then
  redis.call('HSET', trace, 'updated_ms', ARGV[4])
end
if previous then return finish(2, previous) end
return finish(1, false)
