-- A contender stops waiting, or gives back a slot whose request was never sent.
--
-- KEYS[1] slots, KEYS[2] queue, KEYS[3] alive (see budget_acquire.lua)
-- ARGV[1] contender/slot id, ARGV[2] channel

local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'l')
return removed
