-- store.lua: what one call read, and what it will write, each key touched once.
--
-- A redis.call costs about as much again as the command it runs (argument and
-- reply conversion), so a call of many ops must not pay it per message. Reads
-- go through caches (message records, each queue's hash); writes wait in
-- buffers and reach Redis when the call ends, one variadic command per key
-- (records: one HSET; a sorted set: one ZADD and one ZREM...), or just before a
-- command reads that key (zflush, sflush). A queue's ready set is kept apart:
-- the messages made ready in this call wait in a sorted Lua list, and a GET
-- takes from it without Redis while the set in Redis is empty.
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
  's_rate', 's_dwin', 'tk', 'tkt', 'wake'}

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

local function create(q)
  if not exists(q) then
    call('HSETNX', qk(q, ':h'), 'ex', '1')
    hq(q).ex = '1'
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

-- a queue's deliverable messages ----------------------------------------------
--
-- Kept as the in-memory engine keeps them: the fifo (:f, a list of ids) holds
-- priority-0 messages in order and in put time, so its head is its oldest; the
-- heap (:r, a sorted set: score the priority, member the order in 14 hex digits
-- and the id) holds every other deliverable message. Each heap message is also in
-- :a (by put time, for STATS' oldest age), as are the messages their key holds
-- back. Figures nf and nh count fifo and heap; a record's F_IN says where it is
-- ('f', 'h' or false), F_AGED whether it is in :a. Ids appended to the fifo in
-- this call wait in C.fifo[q] until its end; the fifo's last order and put time
-- are the hash fields fto and ftp.

local function heap_member(r, seq) return fmt('%014x', r[F_ORD]) .. seq end

local function fifo_new(q)
  local f = C.fifo[q]
  if not f then
    f = {items = {}, head = 1}
    C.fifo[q] = f
  end
  return f
end

local function fifo_pending(q)
  local f = C.fifo[q]
  if not f then return 0 end
  return #f.items - f.head + 1
end

-- the fifo's last order and put time (nil when it is empty)
local function fifo_tail(q)
  if figure(q, 'nf') == 0 then return nil end
  local t = C.ftail[q]
  if t then return t[1], t[2] end
  return tonumber(hf(q, 'fto')), tonumber(hf(q, 'ftp'))
end

local function aged_add(q, seq, r)
  if not r[F_AGED] then
    r[F_AGED] = true
    zadd(qk(q, ':a'), r[F_PUT], seq)
  end
end

local function aged_drop(q, seq, r)
  if r[F_AGED] then
    r[F_AGED] = false
    zrem(qk(q, ':a'), seq)
  end
end

-- make a READY message deliverable, at its place in (priority, order)
local function push_deliverable(q, seq, r)
  local o, p = fifo_tail(q)
  if r[F_PRIO] == 0 and (not o or (o < r[F_ORD] and p <= r[F_PUT])) then
    local f = fifo_new(q)
    f.items[#f.items + 1] = seq
    C.ftail[q] = {r[F_ORD], r[F_PUT]}
    r[F_IN] = 'f'
    bump(q, 'nf', 1)
  else
    zadd(qk(q, ':r'), r[F_PRIO], heap_member(r, seq))
    r[F_IN] = 'h'
    bump(q, 'nh', 1)
    aged_add(q, seq, r)
  end
end

local function deliverable(q) return figure(q, 'nf') + figure(q, 'nh') end

-- the ids this call took ahead from the front of q's fifo, not given out yet
local function head_left(q)
  local h = C.head[q]
  if not h then return 0 end
  return #h.items - h.pos + 1
end

local function in_redis(q) return figure(q, 'nf') - fifo_pending(q) - head_left(q) end

-- up to n ids from the fifo's front (taken ahead, in Redis, this call's), left in place
local function fifo_peek(q, n)
  local out, h, f = {}, C.head[q], C.fifo[q]
  for i = h and h.pos or 1, h and #h.items or 0 do
    if #out >= n then return out end
    out[#out + 1] = h.items[i]
  end
  local left = math.min(n - #out, in_redis(q))
  if left > 0 then
    for _, seq in ipairs(call('LRANGE', qk(q, ':f'), 0, left - 1)) do out[#out + 1] = seq end
  end
  for i = f and f.head or 1, f and #f.items or 0 do
    if #out >= n then break end
    out[#out + 1] = f.items[i]
  end
  return out
end

-- take n ids from the fifo's front; when Redis has them, as many as this call's GETs
-- may still want on q are taken with them (one LPOP for all; the rest go back at
-- the call's end), with their records
local function fifo_take(q, n)
  local out, h, f = {}, C.head[q], C.fifo[q]
  while h and #out < n and h.pos <= #h.items do
    out[#out + 1] = h.items[h.pos]
    h.pos = h.pos + 1
  end
  local there = in_redis(q)
  if #out < n and there > 0 then
    local ahead = math.max(n - #out, C.demand[q] or 0)
    local got = call('LPOP', qk(q, ':f'), math.min(ahead, there)) or {}
    load_all(got)
    if not h then
      h = {items = {}, pos = 1}
      C.head[q] = h
    end
    for _, seq in ipairs(got) do
      if #out < n then out[#out + 1] = seq else h.items[#h.items + 1] = seq end
    end
  end
  while f and #out < n and f.head <= #f.items do
    out[#out + 1] = f.items[f.head]
    f.head = f.head + 1
  end
  bump(q, 'nf', -#out)
  return out
end

local function before_fifo(score, member, seq)
  local prio = tonumber(score)
  return prio < 0 or (prio == 0 and tonumber(member:sub(1, 14), 16) < tonumber(seq, 16))
end

-- up to n deliverable ids of q in (priority, order), taken out of fifo and heap
local function take_deliverable(q, n)
  C.demand[q] = math.max(0, (C.demand[q] or 0) - n)
  local nf, nh, rk = figure(q, 'nf'), figure(q, 'nh'), qk(q, ':r')
  if nh == 0 then return fifo_take(q, n) end
  zflush(rk)
  local out = {}
  if nf == 0 then
    local popped = call('ZPOPMIN', rk, math.min(n, nh))
    for j = 1, #popped, 2 do out[#out + 1] = popped[j]:sub(15) end
    bump(q, 'nh', -#out)
    return out
  end
  local heap, fifo = zhead(rk, n), fifo_peek(q, n)
  local hi, fi = 1, 1
  while #out < n and (hi < #heap or fi <= #fifo) do
    if fi > #fifo or (hi < #heap and before_fifo(heap[hi + 1], heap[hi], fifo[fi])) then
      out[#out + 1] = heap[hi]:sub(15)
      hi = hi + 2
    else
      out[#out + 1] = fifo[fi]
      fi = fi + 1
    end
  end
  if hi > 1 then
    call('ZPOPMIN', rk, (hi - 1) / 2)
    bump(q, 'nh', -(hi - 1) / 2)
  end
  if fi > 1 then fifo_take(q, fi - 1) end
  return out
end

-- take one deliverable message out of where it is (REMOVE, PURGE...)
local function remove_deliverable(q, seq, r)
  if r[F_IN] == 'f' then
    local done = false
    for _, l in ipairs({C.head[q] or {items = {}, pos = 1}, C.fifo[q] or {items = {}, head = 1}}) do
      for i = l.pos or l.head, #l.items do
        if not done and l.items[i] == seq then
          table.remove(l.items, i)
          done = true
        end
      end
    end
    if not done then call('LREM', qk(q, ':f'), 1, seq) end
    bump(q, 'nf', -1)
  elseif r[F_IN] == 'h' then
    zrem(qk(q, ':r'), heap_member(r, seq))
    bump(q, 'nh', -1)
  end
  r[F_IN] = false
end

-- every READY message of q (deliverable or held back by its key), unsorted
local function ready_ids(q)
  local ids, seen = {}, {}
  local f = C.fifo[q]
  for _, seq in ipairs(fifo_peek(q, figure(q, 'nf'))) do
    ids[#ids + 1] = seq
    seen[seq] = true
  end
  for _, seq in ipairs(zall(qk(q, ':a'))) do
    if not seen[seq] then ids[#ids + 1] = seq end
  end
  return ids
end

-- the put time of q's oldest READY message (nil: none)
local function oldest_ready(q)
  local best = nil
  local a = zhead(qk(q, ':a'), 1)
  if a[2] then best = tonumber(a[2]) end
  local head = fifo_peek(q, 1)[1]
  if head then
    local r = load(head)
    if r and (not best or r[F_PUT] < best) then best = r[F_PUT] end
  end
  return best
end

-- q's fifo was deleted
local function fifo_drop(q)
  C.fifo[q] = nil
  C.ftail[q] = nil
  C.head[q] = nil
end

local function fifo_flush()
  for q, h in pairs(C.head) do -- taken ahead and not given out: back at the front
    local back = {}
    for i = #h.items, h.pos, -1 do back[#back + 1] = h.items[i] end
    if #back > 0 then variadic('LPUSH', qk(q, ':f'), back) end
  end
  for q, f in pairs(C.fifo) do
    if f.head <= #f.items then
      local ids = {}
      for i = f.head, #f.items do ids[#ids + 1] = f.items[i] end
      variadic('RPUSH', qk(q, ':f'), ids)
    end
  end
  for q, t in pairs(C.ftail) do
    call('HSET', qk(q, ':h'), 'fto', n2s(t[1]), 'ftp', n2s(t[2]))
  end
  C.fifo, C.ftail, C.head = {}, {}, {}
end

-- before a call's ops: the records its ACKs, NACKs and TOUCHes name, read together,
-- and how many messages its GETs may take from each queue (see fifo_take)
local function prefetch(list)
  local seqs = {}
  for _, o in ipairs(list) do
    local name = o[1]
    if name == 'ack' then
      for _, seq in ipairs(o[3]) do seqs[#seqs + 1] = seq end
    elseif name == 'nack' or name == 'touch' then
      seqs[#seqs + 1] = o[3]
    elseif name == 'get' then
      C.demand[o[2]] = (C.demand[o[2]] or 0) + o[4]
    end
  end
  load_all(seqs)
end

-- acked history (INFO says "acked"; a late ACK "acked already") --------------

local function ack_note(q, seq, attempts)
  local l = C.acks[q]
  if not l then l = {}; C.acks[q] = l end
  l[#l + 1] = seq
  C.ackv[seq] = pack({q, attempts})
end

-- {queue, attempts} (packed) of an acked seq still remembered, or nil
local function acked(seq)
  return C.ackv[seq] or call('HGET', C.T .. ':ack', seq) or nil
end

local function acks_flush()
  local hist, args = C.d[4], {}
  for seq, v in pairs(C.ackv) do
    args[#args + 1] = seq
    args[#args + 1] = v
  end
  if #args == 0 then return end
  variadic('HSET', C.T .. ':ack', args, true)
  for q, seqs in pairs(C.acks) do
    local al = qk(q, ':al')
    local len = variadic('RPUSH', al, seqs)
    if len > hist then variadic('HDEL', C.T .. ':ack', call('LPOP', al, len - hist)) end
  end
  C.acks, C.ackv = {}, {}
end

-- message order (ids): reserved ahead, so a call of many puts asks Redis once ---

local ORDERS_AHEAD = 256

local function next_order(n)
  if C.orders < n then
    local key = C.T .. ':seq'
    if C.order_next == 0 and call('EXISTS', key) == 0 then
      -- ids stay unique even if Redis lost the counter: start from the clock (microseconds)
      call('SET', key, fmt('%d', math.floor(C.now * 1000)))
    end
    local take = n + ORDERS_AHEAD
    C.order_next = call('INCRBY', key, take) - take + 1
    C.orders = take
  end
  local first = C.order_next
  C.order_next = first + n
  C.orders = C.orders - n
  return first
end

-- the end of a call -----------------------------------------------------------

-- every buffered write, to Redis (the bodies a reply needs were read first)
local function store_flush()
  local put, gone = {}, {}
  for seq in pairs(C.dirty) do
    local r = C.rec[seq]
    if r then
      put[#put + 1] = seq
      put[#put + 1] = pack(r)
    else
      gone[#gone + 1] = seq
    end
  end
  if #put > 0 then variadic('HSET', C.T .. ':m', put, true) end
  if #gone > 0 then variadic('HDEL', C.T .. ':m', gone) end
  local bodies = {}
  for _, seq in ipairs(C.body_new) do
    if not C.body_dead[seq] then
      bodies[#bodies + 1] = seq
      bodies[#bodies + 1] = C.body[seq]
    end
  end
  if #bodies > 0 then variadic('HSET', C.T .. ':b', bodies, true) end
  if #C.body_gone > 0 then variadic('HDEL', C.T .. ':b', C.body_gone) end
  fifo_flush()
  for _, key in ipairs(C.zkeys) do zflush(key) end
  for _, key in ipairs(C.skeys) do sflush(key) end
  acks_flush()
  C.dirty, C.body_new, C.body_gone = {}, {}, {}
end
