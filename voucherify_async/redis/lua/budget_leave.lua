-- A contender stops waiting, or gives back a slot whose request was never sent.
--
-- KEYS: the five keys of budget.lua (slots, queue, alive are used).
-- ARGV[1] contender/slot id, ARGV[2] channel

local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[2]) > 0 then
  redis.call('PUBLISH', ARGV[2], 'l')
end
return removed
