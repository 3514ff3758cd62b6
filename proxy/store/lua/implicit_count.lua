-- Count one implicit signal in the stats of its trace's creation hour, once.
-- KEYS: 1 the hour's counters hash (stats_apply.lua's), 2 the hour's seen-signals hash.
-- ARGV: 1 "<trace_id>\31<span_id>\31<signal>", 2 signal name, 3 model ('' = unknown),
--       4 upstream ('' = unknown), 5 expire_at (unix seconds).
-- Returns 1 when counted now, 0 when it was counted before (a replay).
if redis.call('HSETNX', KEYS[2], ARGV[1], '1') == 0 then return 0 end
local groups = {'all\31'}
if ARGV[3] ~= '' then groups[#groups + 1] = 'model\31' .. ARGV[3] end
if ARGV[4] ~= '' then groups[#groups + 1] = 'upstream\31' .. ARGV[4] end
for _, group in ipairs(groups) do
  redis.call('HINCRBY', KEYS[1], group .. '\31' .. ARGV[2], 1)
end
redis.call('EXPIREAT', KEYS[1], ARGV[5])
redis.call('EXPIREAT', KEYS[2], ARGV[5])
return 1
