-- Publish one snapshot of an action id, only while the caller still leads it (fencing): a
-- leader that was paused past its lease can never publish a stale snapshot.
--
-- KEYS[1] lease, KEYS[2] fence, KEYS[3] stream
-- ARGV[1] token, ARGV[2] fencing token, ARGV[3] body, ARGV[4] max entries kept,
-- ARGV[5] ttl ms of the id's keys, ARGV[6] '1' when the snapshot is terminal,
-- ARGV[7] how long a terminal snapshot stays for late followers (ms), ARGV[8] lease ms
-- (publishing extends the lease, so a leader that polls often needs no other renewal),
-- ARGV[9] the account's channel: the snapshot is pushed to every subscribed process as
-- ``len(stream) \n stream entry-id \n fence \n body`` (see _stream.parse_message)
--
-- Returns the entry id, or false when the caller no longer leads.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[4]), '*',
  'fence', ARGV[2], 'body', ARGV[3])
local ttl = tonumber(ARGV[5])
if ARGV[6] == '1' then
  -- The action ended: everything about it goes once late followers had time to read it.
  ttl = tonumber(ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[8]))
end
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[9],
  string.len(KEYS[3]) .. '\n' .. KEYS[3] .. id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return id
