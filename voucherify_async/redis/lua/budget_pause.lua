-- The server paused the account: no process of it sends for ARGV[1] ms from now.
-- Extends, never shortens, a pause. KEYS[1] pause (see budget_acquire.lua).
-- Returns the pause's end (ms, Redis clock).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > current then
  redis.call('SET', KEYS[1], till, 'PX', tonumber(ARGV[1]))
  return till
end
return current
