-- Stop leading an action id, if the caller still leads it (compare the token first, so a
-- leader whose lease expired can never release another's).
-- KEYS[1] lease; ARGV[1] token. Returns 1 when released.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
