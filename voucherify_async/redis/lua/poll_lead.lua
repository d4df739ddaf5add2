-- Lead the poll of one action id, or keep leading it: a lease (SET NX PX) and a fencing token.
--
-- KEYS[1] lease  string: the leader's token
-- KEYS[2] fence  the last fencing token handed out
-- ARGV[1] token, ARGV[2] lease ms, ARGV[3] ttl ms of the id's keys
--
-- Returns the new fencing token when the caller becomes leader, -1 when it already leads
-- (its lease is extended), 0 when another process leads.
--
-- A fencing token is Redis's clock in microseconds (TIME), or one more than the last token
-- when that is higher: it grows with every new leader, and a Redis restarted empty (or a
-- replica promoted with part of the data) still hands out tokens above every one issued
-- before, as long as its clock moved on (a few microseconds per leadership, at most).

if redis.replicate_commands then
  redis.replicate_commands()  -- TIME before a write: replicate the effects (Redis < 5)
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  local t = redis.call('TIME')
  local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if fence <= last then
    fence = last + 1
  end
  redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', tonumber(ARGV[3]))
  return fence
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return -1
end
return 0
