-- Merge what one process learned into the fleet's: per action type, the newest samples.
--
-- KEYS[1] durations  hash: type -> JSON list of seconds, oldest first
-- KEYS[2] time left  hash: type -> JSON list of [progress, ratio] pairs, oldest first
-- ARGV[1] JSON {type: [new seconds...]}, ARGV[2] JSON {type: [[progress, ratio]...]},
-- ARGV[3] samples kept per type, ARGV[4] types kept per hash, ARGV[5] ttl ms of both keys
--
-- Bounded: the oldest samples of a type go first; a type beyond the cap is not added. A
-- field that does not decode (damaged, or written by another version) is replaced.
-- Returns the number of samples added.

local keep = tonumber(ARGV[3])
local max_types = tonumber(ARGV[4])
local added = 0

local function merge(key, payload)
  local new = cjson.decode(payload)
  for kind, values in pairs(new) do
    local raw = redis.call('HGET', key, kind)
    if raw or redis.call('HLEN', key) < max_types then
      local ok, old = pcall(cjson.decode, raw or '[]')
      if not ok or type(old) ~= 'table' then
        old = {}
      end
      for _, v in ipairs(values) do
        old[#old + 1] = v
        added = added + 1
      end
      local first = math.max(1, #old - keep + 1)
      local kept = {}
      for i = first, #old do
        kept[#kept + 1] = old[i]
      end
      redis.call('HSET', key, kind, cjson.encode(kept))
    end
  end
end

merge(KEYS[1], ARGV[1])
merge(KEYS[2], ARGV[2])
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[5]))
  end
end
return added
