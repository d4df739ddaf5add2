-- Take one slot of a shared request budget, or say how long to wait for one.
--
-- KEYS[1] slots   sorted set: slot id -> when the slot frees (ms, Redis clock)
-- KEYS[2] queue   sorted set: contender id -> when it first asked (ms): first come, first served
-- KEYS[3] alive   sorted set: contender id -> when it counts as gone unless it asks again (ms)
-- KEYS[4] pause   string: until when the server paused the account (ms)
-- KEYS[5] epoch   string: names this budget's state; gone means Redis lost it
-- ARGV[1] limit, ARGV[2] window ms, ARGV[3] lease ms (unanswered hold + window),
-- ARGV[4] contender id (the slot id once admitted), ARGV[5] alive ms, ARGV[6] the epoch the
-- caller knew ('' for none), ARGV[7] a new epoch in case one is needed, ARGV[8] channel,
-- ARGV[9] heartbeat ms (the longest a waiter sleeps before asking again)
--
-- Returns {admitted (1/0), wait ms, now ms, epoch, pause until ms}.
-- Every time is Redis's own (TIME): the hosts' clocks never enter the count.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
local me = ARGV[4]
local alive = tonumber(ARGV[5])
local heartbeat = tonumber(ARGV[9])
local day = 86400000

local epoch = redis.call('GET', KEYS[5])
local lost = false
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', KEYS[5], epoch, 'PX', day)
  -- The state vanished (Redis restarted without persistence, or was flushed) while this
  -- caller was using it.
  lost = ARGV[6] ~= ''
else
  redis.call('PEXPIRE', KEYS[5], day)
  -- Another caller, new to the budget, recreated the state after it vanished: this caller
  -- is the first to know that requests admitted before may still count.
  lost = ARGV[6] ~= '' and ARGV[6] ~= epoch
end
if lost then
  -- Requests admitted before the loss may still count on the server for up to a lease:
  -- hold the whole budget for one lease rather than risk exceeding it.
  for i = 1, limit do
    redis.call('ZADD', KEYS[1], now + lease, 'lost:' .. i)
  end
  redis.call('PEXPIRE', KEYS[1], lease)
end

-- Contenders that stopped asking (their process died) leave the queue.
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[2], 'NX', now, me)
redis.call('ZADD', KEYS[3], now + alive, me)
redis.call('PEXPIRE', KEYS[2], alive)
redis.call('PEXPIRE', KEYS[3], alive)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local pause = tonumber(redis.call('GET', KEYS[4]) or '0')
if pause > now then
  return {0, math.min(pause - now, heartbeat), now, epoch, pause}
end

local used = redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], me)
if limit - used > rank then
  redis.call('ZADD', KEYS[1], now + lease, me)
  redis.call('PEXPIRE', KEYS[1], lease)
  redis.call('ZREM', KEYS[2], me)
  redis.call('ZREM', KEYS[3], me)
  if redis.call('ZCARD', KEYS[2]) > 0 then
    -- The next contender in line may be able to go now.
    redis.call('PUBLISH', ARGV[8], 'a')
  end
  return {1, 0, now, epoch, 0, used + 1}
end

local wait = heartbeat
if used >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.min(wait, tonumber(first[2]) - now)
end
-- Otherwise slots are free but earlier contenders come first: their admission publishes.
return {0, math.max(wait, 1), now, epoch, 0, used}
