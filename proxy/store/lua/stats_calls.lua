-- Add one batch's calls, cost and new traces to the counters of one hour (span_stats.py).
-- KEYS: 1 counters hash (as stats_apply.lua), 2 the hour's admitted dimension values
--       (stats_dimensions.lua), both in the hour's hash slot.
-- ARGV: 1 expire_at (unix seconds), 2 the bound on values per dimension key, 3 P, then P
--       field / amount pairs added as they are, then Q, then Q entries of five: dimension
--       key, value, calls, cost in pico-USD, traces; each counted under the value's group
--       (or "(other)" past the bound).
local counters, dimvals = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[2])
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HINCRBY', counters, ARGV[i], ARGV[i + 1])
  i = i + 2
end
local q = tonumber(ARGV[i])
i = i + 1
for _ = 1, q do
  local group = dimension_group(ARGV[i], admitted(dimvals, ARGV[i], ARGV[i + 1], limit))
  for offset, metric in ipairs({'calls', 'cost_pusd', 'traces'}) do
    local amount = tonumber(ARGV[i + 1 + offset])
    if amount ~= 0 then redis.call('HINCRBY', counters, group .. '\31' .. metric, amount) end
  end
  i = i + 5
end
redis.call('EXPIREAT', counters, ARGV[1])
if q > 0 then redis.call('EXPIREAT', dimvals, ARGV[1]) end
return 1
