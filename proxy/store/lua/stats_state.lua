-- Shared by record_span.lua and merge_feedback.lua (prepended when the scripts load).
-- The trace's current contribution to the feedback stats, as JSON for stats_apply.lua, or
-- false when the trace never had a vote or a rating (it contributes nothing but its count,
-- which the indexes give). ``bump`` gives the state a new version: stats_apply.lua keeps the
-- highest version it has seen, so replays and out-of-order applies never count twice.
-- ``dims`` lists the [stats] dimension keys: the state carries the trace's current value of
-- each it has (dimension_values), so the counters follow a changed value like a changed vote.
local function dimension_value(raw)
  if raw == nil or raw == false then return nil end
  local value = raw
  if string.sub(raw, 1, 1) == '"' then value = cjson.decode(raw) end
  if #value > 256 then
    -- at most 256 bytes, cut on a character boundary: a cut inside a UTF-8 sequence would
    -- make the counters' names (and the JSON that carries them) invalid UTF-8
    value = string.gsub(string.sub(value, 1, 256), '[\192-\255][\128-\191]*$', '')
  end
  value = string.gsub(value, '\31', ' ')
  if value == '' then return nil end
  return value
end

local function dimension_values(attrs, dims)
  local values = {}
  for _, key in ipairs(dims or {}) do
    local value = dimension_value(redis.call('HGET', attrs, key))
    if value then values[key] = value end
  end
  return values
end

local function stats_state(trace, attrs, models, indexes, upstream_prefix, bump, previous_created,
                           dims)
  local vote = redis.call('HGET', attrs, 'user_feedback')
  local rating = redis.call('HGET', attrs, 'user_feedback_rating')
  local version = redis.call('HGET', trace, 'stats_v')
  if not vote and not rating and not version then return false end
  if bump then version = redis.call('HINCRBY', trace, 'stats_v', 1) end
  local upstreams = {}
  for _, name in ipairs(redis.call('SMEMBERS', indexes)) do
    if string.sub(name, 1, #upstream_prefix) == upstream_prefix then
      upstreams[#upstreams + 1] = string.sub(name, #upstream_prefix + 1)
    end
  end
  return cjson.encode({
    v = tonumber(version) or 0,
    c = tonumber(redis.call('HGET', trace, 'created_ms')) or 0,
    from = previous_created or false,
    vote = vote and cjson.decode(vote) or false,
    rating = rating and cjson.decode(rating) or false,
    models = redis.call('SMEMBERS', models),
    upstreams = upstreams,
    dims = dimension_values(attrs, dims),
  })
end
