-- Give back a slot of a shared request budget: it frees a window after the response arrived.
--
-- KEYS[1] slots (see budget_acquire.lua)
-- ARGV[1] slot id, ARGV[2] window ms, ARGV[3] '1' when a response arrived, '0' when not,
-- ARGV[4] when the slot was admitted (ms, Redis clock), ARGV[5] unanswered hold ms,
-- ARGV[6] limit, ARGV[7] channel, ARGV[8] lease ms
--
-- A request without a response may still reach the server up to admitted + hold: its slot
-- frees a window after that, or after now if that is later (the rule of LocalGate).

local t = redis.call('TIME')
-- Rounded up to the millisecond: the slot must not free before a window after the response.
local now = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)
local frees = now
if ARGV[3] ~= '1' then
  frees = math.max(now, tonumber(ARGV[4]) + tonumber(ARGV[5]))
end
redis.call('ZADD', KEYS[1], frees + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[8]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then
  -- Someone may be waiting for the earliest slot, which may now free sooner.
  redis.call('PUBLISH', ARGV[7], 'r')
end
return frees
