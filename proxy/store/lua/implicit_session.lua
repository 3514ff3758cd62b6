-- Regeneration across the traces of one session: keep the session's latest span per input.
-- KEYS: 1 the session's inputs hash (input hash -> "<trace>\31<span>\31<started_ms>\31<model>
--       \31<upstream>"), in the session's own slot.
-- ARGV: 1 input hash, 2 this span's value, 3 trace_id, 4 started_ms, 5 window (ms),
--       6 window (s): the hash expires that long after its last write.
-- Returns {trace_id, span_id, model, upstream} of the earlier span when this call repeats it
-- within the window in another trace (the same trace is record_span.lua's), else false.
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local started = tonumber(ARGV[4])
local result = false
if prev then
  local p_trace, p_span, p_started, p_model, p_upstream =
    string.match(prev, '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$')
  p_started = tonumber(p_started)
  if started < p_started then return false end  -- a late older span: the newer one stays
  if p_trace ~= ARGV[3] and started - p_started <= tonumber(ARGV[5]) then
    result = {p_trace, p_span, p_model, p_upstream}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return result
