-- core.lua: the call context, keys and message records' layout.
--
-- Every function of the library runs one call: a list of ops on the queues of one
-- hash tag (a base queue and its .dead queues), read from ARGV[1] (msgpack), with
-- message bodies as further ARGV entries. `C` holds what one call knows; store.lua
-- holds what it read and what it will write.
-- Times are milliseconds (floats) from Redis TIME, or the caller's test clock in
-- the test build. Numbers passed to Redis go through n2s (Lua's tostring keeps 14
-- digits only). Message ids are hex strings (a per-tag counter).
-- The call's head carries the node's defaults (C.d): {lease ms, max attempts, max
-- queue length, acked history, dedup window s, max dedup ids, forget after ms}.
-- Must never: touch a key outside the call's hash tag, or write before an op has
-- validated everything it needs (Redis has no rollback).

-- (only redis.register_function is reachable while the library loads: the rest of
-- the API, cmsgpack and the standard tables are looked up when a function runs)
local function spread(t, i, j) return unpack(t, i, j) end -- Lua's unpack, before ours
local function pack(x) return cmsgpack.pack(x) end
local function unpack(s) return cmsgpack.unpack(s) end
local function call(...) return redis.call(...) end
local function fmt(...) return string.format(...) end
local DEAD = '.dead'

-- record fields (one msgpack array per message in the hash <T>:m): F_SZ the body's
-- size, F_BODY the body when it is short (else it is in the hash <T>:b), F_IN and
-- F_AGED where a READY message is (ready.lua), F_PEER the HTTP client a message
-- received over the HTTP API was leased to
local F_Q, F_ST, F_ATT, F_MAXATT, F_PRIO, F_PUT, F_DUE, F_OWN, F_KEY, F_ORD, F_HDR =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
local F_SZ, F_BODY, F_IN, F_AGED, F_PEER = 12, 13, 14, 15, 16
local BODY_INLINE_MAX = 1024 -- longer bodies live in <T>:b (a lease rewrites the record)

local C = nil -- the call's context (reset by begin())

local function n2s(x) return fmt('%.17g', x) end

local function is_dead(q) return q:sub(-5) == DEAD end

-- the key of q's structure `kind` (':h', ':f', ...; '' for the prefix), made once a call
local function qk(q, kind)
  kind = kind or ''
  local t = C.keys[q]
  if not t then
    t = {}
    C.keys[q] = t
  end
  local k = t[kind]
  if not k then
    k = C.T .. ':q:' .. q .. kind
    t[kind] = k
  end
  return k
end

local function clock(test_now)
  if TEST_CLOCK and test_now then return test_now end
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function begin(keys, args, head)
  -- head: {inc, test_now|false, defaults, ops}
  C = {
    T = keys[1], args = args, inc = head[1], now = clock(head[2]), d = head[3],
    keys = {}, owned = {}, owners = {}, scores = {}, settled = {}, woken = {}, touched = {}, touched_list = {},
    deliveries = {}, remote = {}, publish = {}, events = {}, created = {},
    -- store.lua's: records, bodies, queue hashes, buffered sorted sets and sets
    rec = {}, dirty = {}, body = {}, body_new = {}, body_gone = {}, body_dead = {}, out = {},
    h = {}, meta = {}, z = {}, zkeys = {}, s = {}, skeys = {},
    fifo = {}, ftail = {}, head = {}, demand = {}, acks = {}, ackv = {}, orders = 0, order_next = 0,
  }
  return C
end

local function owner_inc(owner) return owner:match('^([^/]+)') end

-- a receipt's owner ('~' and a nonce: the lease of one delivery over HTTP) belongs to
-- no connection and no node: no owner sets, never released by a close or a reaping
local function is_receipt(owner) return owner:byte(1) == 126 end

-- t[k], made by make(k) the first time in a call
local function cached(t, k, make)
  local v = t[k]
  if not v then
    v = make(k)
    t[k] = v
  end
  return v
end

-- the key of the set of an incarnation's owners that hold leases (made once a call)
local function owners_key(owner)
  return cached(C.owners, owner, function(o) return C.T .. ':os:' .. owner_inc(o) end)
end

-- the key of the set of ids an owner holds (made once a call)
local function owned_key(owner)
  return cached(C.owned, owner, function(o) return C.T .. ':o:' .. o end)
end

local function touch(q)
  if not C.touched[q] then
    C.touched[q] = true
    C.touched_list[#C.touched_list + 1] = q
  end
end

local function event(q, name)
  local key = q .. '\0' .. name
  C.events[key] = (C.events[key] or 0) + 1
end

-- the ops of a call by name (messages.lua, queues.lua, owners.lua add theirs)
local ops = {}
