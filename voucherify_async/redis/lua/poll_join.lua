-- A process's first look at an action id it does not follow yet, in one call: lead its poll
-- if nobody does, else the newest snapshot after the last one it took.
--
-- KEYS[1] lease, KEYS[2] fence, KEYS[3] stream
-- ARGV[1] token, ARGV[2] lease ms, ARGV[3] ttl ms of the id's keys, ARGV[4] the lowest entry
-- id wanted ('-', or '(' and an id: exclusive), ARGV[5] '1' when the caller may lead
--
-- Returns {fence} when the caller now leads (see poll_lead.lua for the token), else {0} or
-- {0, entry id, {field, value, ...}} with the newest entry after ARGV[4].

if redis.replicate_commands then
  redis.replicate_commands()  -- TIME before a write: replicate the effects (Redis < 5)
end
if ARGV[5] == '1' and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  local t = redis.call('TIME')
  local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if fence <= last then
    fence = last + 1
  end
  redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', tonumber(ARGV[3]))
  return {fence}
end
local newest = redis.call('XREVRANGE', KEYS[3], '+', ARGV[4], 'COUNT', 1)
if newest[1] then
  return {0, newest[1][1], newest[1][2]}
end
return {0}
