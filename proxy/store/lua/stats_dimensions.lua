-- Shared by stats_apply.lua and stats_calls.lua (prepended when the scripts load).
-- The bound on a dimension's values in one hour: the first ``limit`` distinct values of a key
-- get counters of their own, every later one is counted under "(other)". ``dimvals`` is the
-- hour's hash: "v\31<key>\31<value>" -> 1 for each admitted value, "n\31<key>" -> how many.
-- A value once admitted stays admitted for the hour, so its counts never move to "(other)".
local OTHER = '(other)'

local function admitted(dimvals, key, value, limit)
  local field = 'v\31' .. key .. '\31' .. value
  if redis.call('HEXISTS', dimvals, field) == 1 then return value end
  if tonumber(redis.call('HGET', dimvals, 'n\31' .. key) or '0') >= limit then return OTHER end
  redis.call('HSET', dimvals, field, '1')
  redis.call('HINCRBY', dimvals, 'n\31' .. key, 1)
  return value
end

local function dimension_group(key, value)
  return 'attributes.' .. key .. '\31' .. value
end
