-- Extend the leases one process holds, in one call (they share the account's hash tag), and
-- tell the followers each one is alive, so they do not ask for a lease that is held.
--
-- KEYS: lease keys; ARGV[1] lease ms, ARGV[2] the account's channel, then for each key i
-- ARGV[2 + 2i - 1] its token and ARGV[2 + 2i] its stream's name.
-- Returns one integer per key: 1 when extended, 0 when the caller no longer holds it.
-- Each extended lease pushes ``len(stream) \n stream alive`` (see _stream.parse_message).

local kept = {}
for i, key in ipairs(KEYS) do
  local stream = ARGV[2 + 2 * i]
  if redis.call('GET', key) == ARGV[1 + 2 * i] then
    redis.call('PEXPIRE', key, tonumber(ARGV[1]))
    redis.call('PUBLISH', ARGV[2], string.len(stream) .. '\n' .. stream .. 'alive')
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
