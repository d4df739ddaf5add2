-- The server paused the account: no process of it sends for ARGV[1] ms from now.
-- Extends, never shortens, a pause. KEYS: the five keys of budget.lua (only KEYS[4], pause,
-- is used; all are declared so that every script of a budget names the same hash slot).
-- Returns the pause's end (ms, Redis clock).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[4]) or '0')
if till > current then
  redis.call('SET', KEYS[4], till, 'PX', tonumber(ARGV[1]))
  return till
end
return current
