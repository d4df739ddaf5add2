-- The shared request budget's one script: give back slots, renew the leases of long requests,
-- and (when a contender is named) take a slot or say how long to wait for one. One call per
-- request in the steady state: a request's release rides on the next call of its process.
--
-- KEYS (one hash slot: every key carries the budget's {hash tag}):
-- KEYS[1] slots   sorted set: slot id -> the last instant (ms, Redis clock) its request may
--                 reach the server; it counts until a window after that. One member scored
--                 +inf names the state: '~<epoch>|<run_id>|<epochs it replaced>'.
-- KEYS[2] queue   sorted set: contender id -> when it first asked (ms): first come, first served
-- KEYS[3] alive   sorted set: contender id -> when it counts as gone unless it asks again (ms)
-- KEYS[4] pause   string: until when the server paused the account (ms)
-- KEYS[5] confs   sorted set: 'limit:window ms:hold ms' of each configuration in use -> until
--                 when it counts (ms); the strictest in use applies to everyone
--
-- ARGV[1] limit, ARGV[2] window ms, ARGV[3] unanswered hold ms, ARGV[4] contender id ('': no
-- admission wanted), ARGV[5] alive ms, ARGV[6] the epoch the caller knew ('' for none),
-- ARGV[7] a new epoch in case one is needed, ARGV[8] channel, ARGV[9] heartbeat ms,
-- ARGV[10] the id of this process's next contender ('' for none): when the caller is
-- admitted, it joins the queue at once and the reply says how long it should sleep before
-- it asks (its turn), instead of asking at once and being told to wait,
-- ARGV[11] '1' to treat missing state as lost where the server shows it may be: up for less
-- than one lease (an empty restart), or an eviction or a flush since it started (RedisBudget's
-- hold_after_restart), '0' not,
-- ARGV[12] n releases, then n quadruples (slot id, '1' answered / '0' not, ms since it ended
-- by the caller's clock, measured when the call was sent, when it was admitted in ms on
-- Redis's clock); then m renewals, then m slot ids.
--
-- Returns {admitted (1/0), wait ms, now ms, epoch, pause until ms, limit in force,
-- window ms in force, 1 when a loss of state was found (the budget is held) else 0, the
-- next contender's wait ms (-1: not queued), and where a contender asked, the slots of the
-- fleet in use (for instrumentation)}.
-- A waiting contender is told its own turn: when enough slots will have freed for every
-- contender ahead of it and itself, so that N waiting processes do not all ask at each free.
-- Every instant is Redis's own (TIME); a caller's clock only measures how long ago its
-- releases ended (about a window at most), allowing it to run 0.1 % fast.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_up = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local me = ARGV[4]
local alive = tonumber(ARGV[5])
local known = ARGV[6]
local heartbeat = tonumber(ARGV[9])
local day = 86400000

-- Raise a key's time to live to at least ms; never shorten it (another caller's may be longer).
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

-- The configurations in use: the strictest applies (smallest limit, longest window and hold).
-- This ZADD is the script's first write, always made: a server out of memory (maxmemory with
-- noeviction) refuses the whole call here, before it changed anything, so OOM is an outage
-- like any other (a script that wrote first would be let through).
local conf = limit .. ':' .. window .. ':' .. hold
local conf_until = math.max(now + hold + window,
  tonumber(redis.call('ZSCORE', KEYS[5], conf) or '0'))
redis.call('ZADD', KEYS[5], conf_until, conf)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local eff_limit, eff_window, max_hold = limit, window, hold
for _, c in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local l, w, h = string.match(c, '^(%d+):(%d+):(%d+)$')
  if l then
    eff_limit = math.min(eff_limit, tonumber(l))
    eff_window = math.max(eff_window, tonumber(w))
    max_hold = math.max(max_hold, tonumber(h))
  end
end
keep(KEYS[5], max_hold + eff_window)

-- Which server holds the state: a restart or a failover changes the run id, and with it the
-- state may have lost what came after its last snapshot (or the replica's lag).
local run_id = ''
local uptime_ms = nil
local info = redis.pcall('INFO', 'server')
if type(info) == 'string' then
  run_id = string.match(info, 'run_id:(%x+)') or ''
  local seconds = string.match(info, 'uptime_in_seconds:(%d+)')
  if seconds then
    uptime_ms = tonumber(seconds) * 1000
  end
end

local sentinel = redis.call('ZRANGEBYSCORE', KEYS[1], '+inf', '+inf', 'LIMIT', 0, 1)[1]
local epoch, held_by, replaced
if sentinel then
  epoch, held_by, replaced = string.match(sentinel, '^~([^|]*)|([^|]*)|(.*)$')
end
local lost = false
local renew = false
local restarted_at = nil
if not epoch then
  -- No state: new, or gone (a restart without persistence, a flush, an eviction) under a
  -- caller that knew it. A caller new to the budget cannot tell an empty restart from a new
  -- budget, but the server can: one up for less than a lease may have forgotten requests
  -- that still count at the API (they count until a lease after the restart at most).
  -- Nor can it tell a flush or an eviction, but the server shows that one happened.
  lost = known ~= ''
  if not lost and ARGV[11] == '1' then
    local shown = 0
    local stats = redis.pcall('INFO', 'stats')
    if type(stats) == 'string' then
      shown = shown + (tonumber(string.match(stats, 'evicted_keys:(%d+)')) or 0)
    end
    local commands = redis.pcall('INFO', 'commandstats')
    if type(commands) == 'string' then
      shown = shown + (tonumber(string.match(commands, 'cmdstat_flushall:calls=(%d+)')) or 0)
        + (tonumber(string.match(commands, 'cmdstat_flushdb:calls=(%d+)')) or 0)
    end
    if shown > 0 then
      lost = true  -- when is unknown: hold from now
    elseif uptime_ms and uptime_ms < max_hold + eff_window then
      lost = true
      -- INFO counts whole seconds: the restart came at most uptime_ms before now.
      restarted_at = now - uptime_ms
    end
  end
  renew = true
elseif held_by ~= run_id then
  -- Restarted (from a snapshot or an AOF) or failed over: recent writes may be missing.
  lost = true
  renew = true
elseif known ~= '' and known ~= epoch
    and not string.find(',' .. replaced .. ',', ',' .. known .. ',', 1, true) then
  -- Recreated after a loss by a caller new to the budget, which could not tell.
  lost = true
  renew = true
end
if renew then
  if sentinel then
    redis.call('ZREM', KEYS[1], sentinel)
  end
  local was = ''
  if lost then
    was = (epoch or '') .. ',' .. known
  end
  epoch = ARGV[7]
  redis.call('ZADD', KEYS[1], '+inf', '~' .. epoch .. '|' .. run_id .. '|' .. was)
end
if lost then
  -- Requests admitted before the loss may reach the server until now + hold and count a
  -- window after: hold the whole budget that long rather than risk exceeding it.
  local until_ms = (restarted_at or now) + max_hold
  for i = 1, eff_limit do
    redis.call('ZADD', KEYS[1], until_ms, 'lost:' .. i)
  end
end

-- Releases: a slot counts until a window after its request ended (answered), or after
-- admitted + hold if that is later (no answer: it may still reach the server until then).
local n = tonumber(ARGV[12])
local base = 13
for i = 0, n - 1 do
  local j = base + 4 * i
  local ago = tonumber(ARGV[j + 2])
  -- The caller's clock measured ago; allow it to run 0.1 % fast.
  local ended = now_up - ago + math.ceil(ago / 1000)
  if ARGV[j + 1] ~= '1' then
    ended = math.max(ended, tonumber(ARGV[j + 3]) + hold)
  end
  redis.call('ZADD', KEYS[1], ended, ARGV[j])
end
local at = base + 4 * n
local m = tonumber(ARGV[at])
for i = 1, m do
  -- A request still unanswered near its lease's end: it may reach the server until now + hold.
  local member = ARGV[at + i]
  if now + hold > tonumber(redis.call('ZSCORE', KEYS[1], member) or '0') then
    redis.call('ZADD', KEYS[1], now + hold, member)
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - eff_window)

local function expire_slots()
  local last = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local need = day
  if last[2] then
    need = math.max(need, tonumber(last[2]) + eff_window - now + 1000)
  end
  keep(KEYS[1], need)
end

if me == '' then
  expire_slots()
  -- No notification: a release only moves its slot's end earlier, and a waiter whose turn
  -- was computed from the slot's lease asks again within a heartbeat anyway.
  return {0, 0, now, epoch, 0, eff_limit, eff_window, lost and 1 or 0, -1}
end

-- How long until the contender of 0-based rank in the queue can go, with used slots taken:
-- when the (rank - free + 1)-th earliest slot has freed (never longer than a heartbeat).
local function turn(rank, used)
  local free = eff_limit - used
  if free > rank then
    return 0
  end
  local slot = redis.call('ZRANGE', KEYS[1], rank - free, rank - free, 'WITHSCORES')
  local frees = tonumber(slot[2] or '')
  if frees == nil or frees == math.huge then
    return heartbeat
  end
  return math.max(1, math.min(heartbeat, frees + eff_window - now))
end

-- Contenders that stopped asking (their process died) leave the queue.
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[2], 'NX', now, me)
redis.call('ZADD', KEYS[3], now + alive, me)
keep(KEYS[2], alive)
keep(KEYS[3], alive)

local used = redis.call('ZCARD', KEYS[1]) - 1  -- the state's name is no slot
local rank = redis.call('ZRANK', KEYS[2], me)

local pause = tonumber(redis.call('GET', KEYS[4]) or '0')
if pause > now then
  -- Sleep until the pause ends, or until this contender's turn if that comes later.
  expire_slots()
  return {0, math.min(math.max(pause - now, turn(rank, used)), heartbeat), now, epoch, pause,
    eff_limit, eff_window, lost and 1 or 0, -1}
end
if eff_limit - used > rank then
  redis.call('ZADD', KEYS[1], now + hold, me)
  redis.call('ZREM', KEYS[2], me)
  redis.call('ZREM', KEYS[3], me)
  used = used + 1
  local next_wait = -1
  if ARGV[10] ~= '' then
    redis.call('ZADD', KEYS[2], 'NX', now, ARGV[10])
    redis.call('ZADD', KEYS[3], now + alive, ARGV[10])
    next_wait = turn(redis.call('ZRANK', KEYS[2], ARGV[10]), used)
  end
  expire_slots()
  -- No notification: a contender told to wait was told its own turn, which this admission
  -- does not move (it took a free slot, and one contender from ahead of the rest).
  return {1, 0, now, epoch, 0, eff_limit, eff_window, lost and 1 or 0, next_wait, used}
end

expire_slots()
-- Slots may be free while earlier contenders come first: then its turn is when enough more
-- slots free for them and for it.
return {0, turn(rank, used), now, epoch, 0, eff_limit, eff_window, lost and 1 or 0, -1, used}
