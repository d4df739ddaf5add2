-- Lead the poll of one action id, or keep leading it: a lease (SET NX PX) and a fencing token.
--
-- KEYS[1] lease  string: the leader's token
-- KEYS[2] fence  counter: grows with every new leader
-- ARGV[1] token, ARGV[2] lease ms, ARGV[3] ttl ms of the id's keys
--
-- Returns the new fencing token when the caller becomes leader, -1 when it already leads
-- (its lease is extended), 0 when another process leads.

if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
  return fence
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return -1
end
return 0
