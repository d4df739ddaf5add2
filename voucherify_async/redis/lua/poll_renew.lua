-- Extend the leases one process holds, in one call (they share the account's hash tag).
--
-- KEYS: lease keys; ARGV[1] lease ms, ARGV[1 + i] the token for KEYS[i].
-- Returns one integer per key: 1 when extended, 0 when the caller no longer holds it.

local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, tonumber(ARGV[1]))
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
