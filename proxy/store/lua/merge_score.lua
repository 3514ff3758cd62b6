-- Merge one evaluator score into its trace, atomically.
-- KEYS: the trace's keys in keys.TraceKeys.all() order; used: 1 trace hash, 9 the trace's set
--       of index key names, 10 scores hash (score_id -> score JSON).
-- ARGV: 1 trace_id, 2 score_id, 3 score JSON, 4 now_ms, 5 retention_seconds,
--       6 '1' to create the trace when it does not exist yet (a replay), '0' to refuse,
--       7 max scores per trace (0 = no cap: a replay of a score already answered "queued"),
--       8 the score index name prefix, 9 the score_label index name prefix, 10 the time index.
-- Returns {status, created_ms, pair states JSON, index key names to score at created_ms...}.
-- status: 1 new, 2 replaced (same score_id, newer content), 3 nothing changed (the same score
-- again), 4 nothing changed (an older one than stored); for 3 and 4 the rest still comes back,
-- so a replay can finish a second step that failed, -1 the trace holds the maximum of scores,
-- -2 no such trace.
-- The pair states are one {name, v, c, score JSON or false} per score name this change
-- touched: the trace's latest score of that name now (false: none left), version v, created c.
local trace, indexes, scores = KEYS[1], KEYS[9], KEYS[10]
local id, json = ARGV[2], ARGV[3]
local new = cjson.decode(json)

if redis.call('EXISTS', trace) == 0 and ARGV[6] ~= '1' then
  return {-2, 0, '[]'}
end

local function latest(name)
  local best, best_json = nil, false
  for _, raw in ipairs(redis.call('HVALS', scores)) do
    local s = cjson.decode(raw)
    if s.name == name and (best == nil or s.created_at > best.created_at
        or (s.created_at == best.created_at and s.score_id > best.score_id)) then
      best, best_json = s, raw
    end
  end
  return best_json
end

local function finish(status, previous, bump)
  local created = redis.call('HGET', trace, 'created_ms')
  local version = redis.call('HGET', trace, 'score_v') or '0'
  if bump then version = redis.call('HINCRBY', trace, 'score_v', 1) end
  local names = {new.name}
  if previous and previous.name ~= new.name then names[2] = previous.name end
  local states = {}
  for _, name in ipairs(names) do
    states[#states + 1] = {name = name, v = tonumber(version), c = tonumber(created),
                           score = latest(name)}
  end
  local index_names = {ARGV[10], ARGV[8] .. new.name}
  if new.label ~= cjson.null and new.label ~= nil then
    index_names[3] = ARGV[9] .. new.name .. ':' .. new.label
  end
  redis.call('SADD', indexes, unpack(index_names))
  local expire_at = math.floor(tonumber(created) / 1000) + tonumber(ARGV[5])
  for _, k in ipairs(KEYS) do redis.call('EXPIREAT', k, expire_at) end
  local result = {status, created, cjson.encode(states)}
  for _, name in ipairs(index_names) do result[#result + 1] = name end
  return result
end

local stored = redis.call('HGET', scores, id)
if stored == json then return finish(3, false, false) end
local previous = stored and cjson.decode(stored) or false
if previous and previous.created_at > new.created_at then
  return finish(4, false, false)  -- a stored newer version of this score wins over a late one
end
local cap = tonumber(ARGV[7])
if not previous and cap > 0 and redis.call('HLEN', scores) >= cap then
  return {-1, 0, '[]'}
end
redis.call('HSET', scores, id, json)
redis.call('HSET', trace, 'trace_id', ARGV[1])
redis.call('HSETNX', trace, 'created_ms', ARGV[4])
local updated = tonumber(redis.call('HGET', trace, 'updated_ms'))
if updated == nil or tonumber(ARGV[4]) > updated then
  redis.call('HSET', trace, 'updated_ms', ARGV[4])
end
if previous then return finish(2, previous, true) end
return finish(1, false, true)
