-- ready.lua: a queue's deliverable messages, kept as the in-memory engine keeps them.
--
-- The messages made ready in a call wait in a sorted Lua list until its end, and a
-- GET takes from it without Redis while the list in Redis is empty; a GET takes
-- ahead what the call's other GETs on the queue will want (prefetch), with one LPOP.
-- Must never: lose an id taken ahead (fifo_flush puts back what was not given out),
-- or read :r without flushing it (zhead, zread).

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

-- a heap entry sorts before a fifo message of order ord (priority 0)
local function before_fifo(score, member, ord)
  local prio = tonumber(score)
  return prio < 0 or (prio == 0 and tonumber(member:sub(1, 14), 16) < ord)
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
  load_all(fifo) -- (a redriven message's id is not its order: the record says)
  local hi, fi = 1, 1
  while #out < n and (hi < #heap or fi <= #fifo) do
    if fi > #fifo or (hi < #heap and before_fifo(heap[hi + 1], heap[hi], C.rec[fifo[fi]][F_ORD])) then
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
