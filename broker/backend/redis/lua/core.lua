-- core.lua: the call context, keys, message records and per-queue counters.
--
-- Every function of the library runs one call: a list of ops on the queues of one
-- hash tag (a base queue and its .dead queues), read from ARGV[1] (msgpack), with
-- message bodies as further ARGV entries. `C` holds what one call knows.
-- Times are milliseconds (floats) from Redis TIME, or the caller's test clock in
-- the test build. Numbers passed to Redis go through n2s (Lua's tostring keeps 14
-- digits only). Message ids are hex strings (a per-tag counter).
-- Must never: touch a key outside the call's hash tag, or write before an op has
-- validated everything it needs (Redis has no rollback).

-- (only redis.register_function is reachable while the library loads: the rest of
-- the API, cmsgpack and the standard tables are looked up when a function runs)
local function pack(x) return cmsgpack.pack(x) end
local function unpack(s) return cmsgpack.unpack(s) end
local function call(...) return redis.call(...) end
local function fmt(...) return string.format(...) end
local DEAD = '.dead'

-- record fields (one msgpack array per message in the hash <T>:m)
local F_Q, F_ST, F_ATT, F_MAXATT, F_PRIO, F_PUT, F_DUE, F_OWN, F_KEY, F_ORD, F_HDR =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11

local C = nil -- the call's context (reset by begin())

local function n2s(x) return fmt('%.17g', x) end

local function is_dead(q) return q:sub(-5) == DEAD end

local function qk(q) return C.T .. ':q:' .. q end

local function clock(test_now)
  if TEST_CLOCK and test_now then return test_now end
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function begin(keys, args, head)
  -- head: {inc, test_now|false, defaults, ops}
  C = {
    T = keys[1], args = args, inc = head[1], now = clock(head[2]), d = head[3],
    meta = {}, settled = {}, woken = {}, touched = {}, touched_list = {}, emptied = {},
    bodies = {}, deliveries = {}, publish = {}, events = {},
  }
  return C
end

-- records and bodies ------------------------------------------------------

local function load(seq)
  local raw = call('HGET', C.T .. ':m', seq)
  if not raw then return nil end
  return unpack(raw)
end

local function save(seq, r) call('HSET', C.T .. ':m', seq, pack(r)) end

local function body_size(seq) return call('HSTRLEN', C.T .. ':b', seq) end

-- what a message takes of a reply's budget: its body and its headers (as the engine)
local function reply_size(seq, r)
  local n = body_size(seq)
  if r[F_HDR] then
    for name, value in pairs(r[F_HDR]) do n = n + #name + #value + 6 end
  end
  return n
end

local function forget(seq)
  call('HDEL', C.T .. ':m', seq)
  call('HDEL', C.T .. ':b', seq)
end

local function next_order(n)
  local key = C.T .. ':seq'
  if call('EXISTS', key) == 0 then
    -- ids stay unique even if Redis lost the counter: start from the clock (microseconds)
    call('SET', key, fmt('%d', math.floor(C.now * 1000)))
  end
  return call('INCRBY', key, n) - n + 1
end

local function owner_inc(owner) return owner:match('^([^/]+)') end

-- per-queue figures: deltas summed in the call, written once at its end ---

local function touch(q)
  if not C.touched[q] then
    C.touched[q] = true
    C.touched_list[#C.touched_list + 1] = q
  end
end

local function bump(q, field, n)
  local m = C.meta[q]
  if not m then m = {}; C.meta[q] = m end
  m[field] = (m[field] or 0) + n
  touch(q)
  if n < 0 then C.emptied[q] = true end -- it may be idle now: finish() looks
end

local function figure(q, field)
  local m = C.meta[q]
  local v = tonumber(call('HGET', qk(q) .. ':h', field)) or 0
  if m and m[field] then v = v + m[field] end
  return v
end

local function flush_meta()
  for q, m in pairs(C.meta) do
    local h = qk(q) .. ':h'
    for field, n in pairs(m) do
      if n ~= 0 then call('HINCRBY', h, field, n) end
    end
  end
  C.meta = {}
end

local function exists(q) return call('HEXISTS', qk(q) .. ':h', 'ex') == 1 end

-- a queue exists while its :h has 'ex'; made by what stores in it (never by a GET)
local function create(q)
  local h = qk(q) .. ':h'
  call('HSETNX', h, 'ex', '1')
  call('PERSIST', h) -- it was idle, and would have been forgotten
  touch(q)
end

local function size(q) return figure(q, 'nr') + figure(q, 'nd') + figure(q, 'nl') end

-- a queue's setting, or nil (the node's default applies)
local function setting(q, name) return tonumber(call('HGET', qk(q) .. ':h', 's_' .. name)) end

local function event(q, name)
  local key = q .. '\0' .. name
  C.events[key] = (C.events[key] or 0) + 1
end
