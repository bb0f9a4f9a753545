-- store.lua: what one call read, and what it will write, each key touched once.
--
-- A redis.call costs about as much again as the command it runs (argument and
-- reply conversion), so a call of many ops must not pay it per message. Reads
-- go through caches (message records, each queue's hash); writes wait in
-- buffers and reach Redis when the call ends (flush.lua), one variadic command
-- per key (records: one HSET; a sorted set: one ZADD and one ZREM...), or just
-- before a command reads that key (zflush, sflush). A queue's ready messages
-- are ready.lua's.
-- Must never: let a command read a key whose buffered writes were not flushed,
-- delete a key without dropping its buffered writes, or keep anything past the
-- call (begin() resets C).

local ARGS_MAX = 4000 -- arguments of one variadic command (Lua's C stack holds 8000)

-- cmd key args... in chunks (pairs kept together); the last reply and their sum
local function variadic(cmd, key, args, pairs_of)
  local n, i, last, sum = #args, 1, 0, 0
  while i <= n do
    local j = math.min(n, i + ARGS_MAX - 1)
    if pairs_of and (j - i) % 2 == 0 then j = j - 1 end
    last = call(cmd, key, spread(args, i, j))
    if type(last) == 'number' then sum = sum + last end
    i = j + 1
  end
  return last, sum
end

-- records -----------------------------------------------------------------

local function decode(raw)
  if raw then return unpack(raw) end
  return false
end

local function load(seq)
  local r = C.rec[seq]
  if r == nil then
    r = decode(call('HGET', C.T .. ':m', seq))
    C.rec[seq] = r
  end
  return r or nil
end

-- read the records of seqs not read yet, with one HMGET
local function load_all(seqs)
  local want = {}
  for _, seq in ipairs(seqs) do
    if C.rec[seq] == nil then want[#want + 1] = seq end
  end
  local i = 1
  while i <= #want do
    local j = math.min(#want, i + ARGS_MAX - 1)
    local raws = call('HMGET', C.T .. ':m', spread(want, i, j))
    for k = i, j do C.rec[want[k]] = decode(raws[k - i + 1]) end
    i = j + 1
  end
end

local function records(seqs)
  load_all(seqs)
  local out = {}
  for _, seq in ipairs(seqs) do
    local r = C.rec[seq]
    if r then out[#out + 1] = {seq, r} end
  end
  return out
end

local function save(seq, r)
  C.rec[seq] = r
  C.dirty[seq] = true
end

-- bodies: a short one is in its record (F_BODY), a long one in <T>:b; C.body[seq]
-- holds a long one put in this call (written at the end unless it is gone by then)
local function body_add(seq, body)
  C.body[seq] = body
  C.body_new[#C.body_new + 1] = seq
end

local function forget(seq, r)
  C.rec[seq] = false
  C.dirty[seq] = true
  if r[F_BODY] then return end
  if C.body[seq] then C.body_dead[seq] = true
  else C.body_gone[#C.body_gone + 1] = seq end
end

local function body_size(seq, r)
  return r[F_SZ] or call('HSTRLEN', C.T .. ':b', seq)
end

-- what a message takes of a reply's byte budget: its body, and its headers as the
-- in-memory engine counts them (headers_bytes: name, value and 6 bytes of JSON each)
local function reply_size(seq, r)
  local n = body_size(seq, r)
  local hdr = r[F_HDR]
  if hdr then
    for name, value in pairs(hdr) do n = n + #name + #value + 6 end
  end
  return n
end

-- the place of a body among the bulk strings after the call's reply (body: the
-- record's F_BODY, or false for a long one, read at the call's end)
local function body_ref(seq, body)
  C.out[#C.out + 1] = {seq, body}
  return #C.out
end

-- the long bodies of seqs: seq -> body (this call's, the rest with HMGET)
local function long_bodies(seqs)
  local vals, want = {}, {}
  for _, seq in ipairs(seqs) do
    if vals[seq] == nil then
      local b = C.body[seq]
      if b then vals[seq] = b else vals[seq] = false; want[#want + 1] = seq end
    end
  end
  local i = 1
  while i <= #want do
    local j = math.min(#want, i + ARGS_MAX - 1)
    local got = call('HMGET', C.T .. ':b', spread(want, i, j))
    for k = i, j do vals[want[k]] = got[k - i + 1] end
    i = j + 1
  end
  return vals
end

-- the bodies of the call's reply, in order (read before the call's writes delete any)
local function reply_bodies()
  local long = {}
  for _, e in ipairs(C.out) do
    if not e[2] then long[#long + 1] = e[1] end
  end
  local vals = long_bodies(long)
  local out = {}
  for i, e in ipairs(C.out) do out[i] = e[2] or vals[e[1]] end
  return out
end

-- a queue's hash: figures, settings, flags ---------------------------------

local HOT = {'ex', 'nr', 'nd', 'nl', 'nw', 'by', 'paused', 's_lease', 's_matt', 's_mlen',
  's_rate', 's_dwin', 'tk', 'tkt', 'wake', 'fg', 'xu'}

local function hq(q)
  local h = C.h[q]
  if not h then
    h = {}
    local v = call('HMGET', qk(q, ':h'), spread(HOT))
    for i, f in ipairs(HOT) do h[f] = v[i] end -- false when absent
    C.h[q] = h
  end
  return h
end

-- a field of q's hash (nil when absent)
local function hf(q, field)
  local h = hq(q)
  local v = h[field]
  if v == nil then
    v = call('HGET', qk(q, ':h'), field)
    h[field] = v
  end
  return v or nil
end

local function hset(q, field, value)
  call('HSET', qk(q, ':h'), field, value)
  hq(q)[field] = value
end

local function hdel(q, field)
  call('HDEL', qk(q, ':h'), field)
  hq(q)[field] = false
end

-- per-queue figures: deltas summed in the call, written once at its end
local function bump(q, field, n)
  local m = C.meta[q]
  if not m then m = {}; C.meta[q] = m end
  m[field] = (m[field] or 0) + n
  touch(q)
end

local function figure(q, field)
  local v = tonumber(hf(q, field)) or 0
  local m = C.meta[q]
  if m and m[field] then v = v + m[field] end
  return v
end

local function flush_meta()
  for q, m in pairs(C.meta) do
    local key, h = qk(q, ':h'), C.h[q]
    for field, n in pairs(m) do
      if n ~= 0 then
        local v = call('HINCRBY', key, field, n)
        if h then h[field] = v end
      end
    end
  end
  C.meta = {}
end

local function exists(q) return hf(q, 'ex') ~= nil end

-- make q if it does not exist (the call's reply names the queues it made: the node
-- registers their names for QUEUES and STATS)
local function create(q)
  if not exists(q) then
    call('HSETNX', qk(q, ':h'), 'ex', '1')
    hq(q).ex = '1'
    C.created[#C.created + 1] = q
  end
  touch(q)
end

-- a queue's setting (its field: 's_lease', 's_matt'...), or nil (the node's default applies)
local function setting(q, field) return tonumber(hf(q, field)) end

local function paused(q) return hf(q, 'paused') ~= nil end

local function size(q) return figure(q, 'nr') + figure(q, 'nd') + figure(q, 'nl') end

-- buffered sorted sets and sets: key -> member -> score (zset) or true (set); false: gone

local function buf(all, keys, key)
  local b = all[key]
  if not b then
    b = {}
    all[key] = b
    keys[#keys + 1] = key
  end
  return b
end

-- in every sorted set the library writes, a member longer than 64 bytes (score +inf,
-- so it sorts last and no due-time range reaches it): Redis keeps a small sorted set
-- as a listpack, where each ZADD or ZREM scans it (2.3 us an element at 64 of them,
-- measured; 0.35 us as a skiplist), and such a member makes it a skiplist for good
local SKIP = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'

local function zadd(key, score, member) buf(C.z, C.zkeys, key)[member] = score end
local function zrem(key, member) buf(C.z, C.zkeys, key)[member] = false end

local function zflush(key)
  local b = C.z[key]
  if not b or next(b) == nil then return end
  local adds, gone, text = {'inf', SKIP}, {}, C.scores
  for member, score in pairs(b) do
    if score then
      local s = text[score] -- (the leases of one GET share a deadline: formatted once)
      if not s then
        s = n2s(score)
        text[score] = s
      end
      adds[#adds + 1] = s
      adds[#adds + 1] = member
    else
      gone[#gone + 1] = member
    end
  end
  if #gone > 0 then variadic('ZREM', key, gone) end
  if #adds > 2 then variadic('ZADD', key, adds, true) end
  C.z[key] = {}
end

-- key, its buffered writes flushed: for a command that reads it
local function zread(key)
  zflush(key)
  return key
end

-- every member of the sorted set key in order (SKIP left out), its writes flushed first
local function zall(key)
  local out = call('ZRANGE', zread(key), 0, -1)
  if out[#out] == SKIP then out[#out] = nil end
  return out
end

-- the first n {member, score...} pairs of key (SKIP left out), flushed first
local function zhead(key, n)
  local out = call('ZRANGE', zread(key), 0, n - 1, 'WITHSCORES')
  if out[#out - 1] == SKIP then
    out[#out] = nil
    out[#out] = nil
  end
  return out
end

local function zcount(key) return call('ZCOUNT', zread(key), '-inf', '(inf') end

local function sadd(key, member) buf(C.s, C.skeys, key)[member] = true end
local function srem(key, member) buf(C.s, C.skeys, key)[member] = false end

local function sflush(key)
  local b = C.s[key]
  if not b or next(b) == nil then return end
  local adds, gone = {}, {}
  for member, there in pairs(b) do
    if there then adds[#adds + 1] = member else gone[#gone + 1] = member end
  end
  if #gone > 0 then variadic('SREM', key, gone) end
  if #adds > 0 then variadic('SADD', key, adds) end
  C.s[key] = {}
end

local function sread(key)
  sflush(key)
  return key
end

-- the key is about to be deleted: so are its buffered writes
local function drop_buffered(key)
  C.z[key] = {}
  C.s[key] = {}
end
