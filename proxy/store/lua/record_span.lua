-- Record one finished span into its trace, atomically.
-- KEYS: 1 trace hash, 2 spans hash, 3 attributes hash, 4 tags set, 5 models set
-- ARGV: 1 trace_id, 2 span_id, 3 span JSON, 4 started_ms, 5 now_ms, 6 retention_seconds,
--       7 name, 8 session_id, 9 user_id, 10 model, 11 number of attribute pairs N,
--       12 .. 11+2N attribute key / JSON value pairs, then tags.
-- A span is written once: a replayed span changes nothing (returns 0), so the proxy's spool
-- can re-send a batch after a crash without doubling anything. Attributes and tags that came
-- with the request merge key by key; they never touch feedback history or span feedback.
local trace, spans, attrs, tags, models = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if redis.call('HSETNX', spans, ARGV[2], ARGV[3]) == 0 then
  return 0
end
local started, now = tonumber(ARGV[4]), tonumber(ARGV[5])
local created = tonumber(redis.call('HGET', trace, 'created_ms'))
if created == nil or started < created then
  created = started
  redis.call('HSET', trace, 'created_ms', ARGV[4])
end
local updated = tonumber(redis.call('HGET', trace, 'updated_ms'))
if updated == nil or now > updated then
  redis.call('HSET', trace, 'updated_ms', ARGV[5])
end
redis.call('HSET', trace, 'trace_id', ARGV[1])
redis.call('HINCRBY', trace, 'span_count', 1)
for i, field in ipairs({'name', 'session_id', 'user_id'}) do
  if ARGV[6 + i] ~= '' then
    redis.call('HSET', trace, field, ARGV[6 + i])
  end
end
if ARGV[10] ~= '' then
  redis.call('SADD', models, ARGV[10])
end
local n = tonumber(ARGV[11])
for i = 0, n - 1 do
  redis.call('HSET', attrs, ARGV[12 + 2 * i], ARGV[13 + 2 * i])
end
for i = 12 + 2 * n, #ARGV do
  redis.call('SADD', tags, ARGV[i])
end
local expire_at = math.floor(created / 1000) + tonumber(ARGV[6])
for _, key in ipairs(KEYS) do
  redis.call('EXPIREAT', key, expire_at)
end
return 1
