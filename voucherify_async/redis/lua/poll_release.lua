-- Stop leading an action id, if the caller still leads it (compare the token first, so a
-- leader whose lease expired can never release another's).
--
-- KEYS[1] lease, KEYS[2] stream; ARGV[1] token, ARGV[2] '1' to hand the poll over, ARGV[3]
-- the ttl ms of a stream this creates, ARGV[4] the account's channel (the entry is pushed
-- there too, its fence field saying ``handover``). A handover appends an entry without a snapshot
-- (``handover``): followers, who block on the stream, take the lease now instead of a lease
-- later. Returns 1 when released.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] == '1' then
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', 16, '*', 'fence', '0', 'handover', '1')
    redis.call('PUBLISH', ARGV[4],
      string.len(KEYS[2]) .. '\n' .. KEYS[2] .. id .. '\n' .. 'handover' .. '\n')
    if redis.call('PTTL', KEYS[2]) < 0 then
      redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
    end
  end
  return 1
end
return 0
