-- queues.lua: the ops on whole queues: PEEK, STATS, PURGE, REDRIVE, REMOVE, DELETE,
-- PAUSE, RESUME and CONFIG (and whether queues exist). The same rules as messages.lua:
-- everything checked before the first write.

local COUNTERS = {'put', 'acked', 'nacked', 'expired', 'released_on_disconnect',
  'dead_lettered', 'redriven', 'purged'}
local SETTINGS = {'lease', 'matt', 'mlen', 'rate', 'dwin'}

local function by_place(a, b)
  if a[2][F_PRIO] ~= b[2][F_PRIO] then return a[2][F_PRIO] < b[2][F_PRIO] end
  return a[2][F_ORD] < b[2][F_ORD]
end

local function by_due(a, b)
  if a[2][F_DUE] ~= b[2][F_DUE] then return a[2][F_DUE] < b[2][F_DUE] end
  return a[2][F_ORD] < b[2][F_ORD]
end

-- the first `limit` of a deadline zset, ties in queue order
local function soonest(key, limit)
  local head = zhead(key, limit)
  if #head == 0 then return {} end
  local seqs, seen = {}, {}
  for j = 1, #head, 2 do seqs[#seqs + 1] = head[j]; seen[head[j]] = true end
  for _, seq in ipairs(call('ZRANGEBYSCORE', key, head[#head], head[#head])) do
    if not seen[seq] then seqs[#seqs + 1] = seq end -- every tie of the last one, for the sort
  end
  local out = records(seqs)
  table.sort(out, by_due)
  return out
end

-- {'peek', q, state|false, limit, budget}
ops.peek = function(o)
  local q, state, limit, budget = o[2], o[3], o[4], o[5]
  if not exists(q) then return {'e', 'no_queue'} end
  if state == 'dead' then q = q .. DEAD; state = false end
  settle(q)
  local found, total = {}, 0
  if state == 'delayed' or state == 'leased' then
    local key = qk(q) .. (state == 'delayed' and ':d' or ':l')
    total = zcount(key)
    found = soonest(key, limit)
  else
    local seqs = ready_ids(q)
    total = #seqs
    if not state then
      for _, kind in ipairs({':d', ':l'}) do
        for _, seq in ipairs(zall(qk(q, kind))) do
          seqs[#seqs + 1] = seq
        end
      end
      total = #seqs
    end
    found = records(seqs)
    table.sort(found, by_place)
  end
  local out = {}
  for _, item in ipairs(found) do
    if #out >= limit then break end
    local sz = reply_size(item[1], item[2])
    if #out > 0 and budget < sz then break end
    budget = budget - sz
    out[#out + 1] = view(item[1], item[2], true)
  end
  return {'ok', out, total}
end

local function settings_of(q)
  local out = {}
  for i, name in ipairs(SETTINGS) do out[i] = setting(q, 's_' .. name) or false end
  return out
end

-- {'stats', q}
ops.stats = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  settle(q)
  local dead = 0
  if exists(q .. DEAD) then dead = size(q .. DEAD) end
  local oldest = oldest_ready(q)
  local age = false
  if oldest then age = C.now - oldest end
  local counters = {}
  for i, name in ipairs(COUNTERS) do counters[i] = figure(q, name) end
  return {'ok', {figure(q, 'nr'), figure(q, 'nd'), figure(q, 'nl'), dead, figure(q, 'nw'),
    figure(q, 'by'), age, counters, paused(q), settings_of(q), figure(q, 'dedup_evicted')}}
end

-- {'exists', queues}
ops.exists = function(o)
  local out = {}
  for i, q in ipairs(o[2]) do out[i] = exists(q) end
  return {'ok', out}
end

-- take a READY or DELAYED message out of its queue (and its record with it if `drop`)
local function unqueue(q, seq, r)
  if r[F_ST] == 'r' then
    remove_deliverable(q, seq, r)
    aged_drop(q, seq, r)
    bump(q, 'nr', -1)
  else
    zrem(qk(q, ':d'), seq)
    bump(q, 'nd', -1)
  end
  if r[F_KEY] then chain_remove(q, seq, r[F_KEY]) end
  local sz = body_size(seq, r)
  bump(q, 'by', -sz)
  return sz
end

-- {'purge', q}: every READY and DELAYED message goes (the keys that hold them, whole)
ops.purge = function(o)
  local q = o[2]
  if not exists(q) then return {'ok', 0} end
  settle(q)
  local k = qk(q)
  local victims = ready_ids(q)
  for _, seq in ipairs(zall(k .. ':d')) do victims[#victims + 1] = seq end
  local size = 0
  for _, item in ipairs(records(victims)) do
    local r = item[2]
    size = size + body_size(item[1], r)
    if r[F_KEY] then call('LREM', k .. ':c:' .. r[F_KEY], 1, item[1]) end
    forget(item[1], r)
  end
  for _, kind in ipairs({':f', ':r', ':a', ':d'}) do drop_buffered(k .. kind) end
  fifo_drop(q)
  call('DEL', k .. ':f', k .. ':r', k .. ':a', k .. ':d')
  for _, field in ipairs({'nr', 'nd', 'nf', 'nh'}) do bump(q, field, -figure(q, field)) end
  bump(q, 'by', -size)
  bump(q, 'purged', #victims)
  return {'ok', #victims}
end

-- {'redrive', q, ids|false}
ops.redrive = function(o)
  local q, ids = o[2], o[3]
  local src = q .. DEAD
  local moved, leased, missing = {}, {}, {}
  -- q's leases past their deadline first: a last attempt among them is a dead letter now
  if exists(q) then settle(q) end
  if exists(src) then
    settle(src)
    if ids then
      for _, seq in ipairs(ids) do
        local r = load(seq)
        if not r or r[F_Q] ~= src then missing[#missing + 1] = seq
        elseif r[F_ST] == 'l' then leased[#leased + 1] = seq
        else moved[#moved + 1] = {seq, r} end
      end
    else
      moved = records(ready_ids(src))
      -- as the engine moves them: the deliverable first, then those their key held back
      -- (each part in put order; priorities still order the deliveries in q)
      for _, item in ipairs(moved) do
        local key = item[2][F_KEY]
        item[3] = (key and not chain_is_head(src, item[1], key)) and 1 or 0
      end
      table.sort(moved, function(a, b)
        if a[3] ~= b[3] then return a[3] < b[3] end
        return a[2][F_ORD] < b[2][F_ORD]
      end)
    end
    if #moved > 0 then -- a REDRIVE with nothing to move makes no queue (protocol.md 3)
      create(q)
      for _, item in ipairs(moved) do
        local seq, r = item[1], item[2]
        local sz = unqueue(src, seq, r)
        r[F_ATT] = 0
        enqueue_moved(seq, r, q, sz)
      end
      bump(q, 'redriven', #moved)
    end
  elseif ids then
    missing = ids
  end
  return {'ok', #moved, leased, missing}
end

-- {'remove', q, ids}
ops.remove = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  settle(q)
  local removed, leased, missing = 0, {}, {}
  for _, seq in ipairs(o[3]) do
    local r = load(seq)
    if not r or r[F_Q] ~= q then missing[#missing + 1] = seq
    elseif r[F_ST] == 'l' then leased[#leased + 1] = seq
    else
      unqueue(q, seq, r)
      forget(seq, r)
      removed = removed + 1
    end
  end
  return {'ok', removed, leased, missing}
end

-- delete one queue and everything in it; the number of messages it held
local function drop_queue(q)
  local k = qk(q)
  local n = 0
  local seqs = ready_ids(q)
  for _, kind in ipairs({':d', ':l'}) do
    for _, seq in ipairs(zall(k .. kind)) do seqs[#seqs + 1] = seq end
  end
  for _, item in ipairs(records(seqs)) do
    local seq, r = item[1], item[2]
    if r[F_KEY] then call('DEL', k .. ':c:' .. r[F_KEY]) end
    if r[F_ST] == 'l' then srem(owned_key(r[F_OWN]), seq) end
    forget(seq, r)
    n = n + 1
  end
  acks_flush()
  for _, seq in ipairs(call('LRANGE', k .. ':al', 0, -1)) do call('HDEL', C.T .. ':ack', seq) end
  for _, wid in ipairs(call('LRANGE', k .. ':w', 0, -1)) do
    local raw = call('HGET', C.T .. ':w', wid)
    if raw then
      local w = unpack(raw)
      drop_waiter(q, wid, w)
      deliver(w[5], wid, {})
    end
  end
  for _, kind in ipairs({':r', ':a', ':d', ':l'}) do drop_buffered(k .. kind) end
  fifo_drop(q)
  call('DEL', k .. ':h', k .. ':f', k .. ':r', k .. ':a', k .. ':d', k .. ':l', k .. ':w',
    k .. ':wn', k .. ':x', k .. ':X', k .. ':al')
  C.h[q] = nil
  C.meta[q] = nil
  C.settled[q] = nil
  return n
end

-- {'delete', q, dead}
ops.delete = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  local n = drop_queue(q)
  if o[3] and exists(q .. DEAD) then n = n + drop_queue(q .. DEAD) end
  return {'ok', n}
end

ops.pause = function(o)
  create(o[2])
  hset(o[2], 'paused', '1')
  return {'ok'}
end

ops.resume = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  settle(q)
  hdel(q, 'paused')
  wake(q)
  touch(q)
  return {'ok'}
end

-- {'config', q, changes}: name -> value, or false to reset it
ops.config = function(o)
  local q, changes = o[2], o[3]
  if next(changes) == nil then
    if not exists(q) then return {'e', 'no_queue'} end
    return {'ok', settings_of(q)}
  end
  create(q)
  settle(q)
  if changes.rate ~= nil then
    local tk = bucket(q)
    if changes.rate then
      local cap = math.max(1, changes.rate)
      hset(q, 'tk', n2s(math.min(cap, tk or cap)))
      hset(q, 'tkt', n2s(C.now))
    else
      hdel(q, 'tk')
      hdel(q, 'tkt')
    end
  end
  for _, name in ipairs(SETTINGS) do
    local v = changes[name]
    if v then hset(q, 's_' .. name, n2s(v))
    elseif v == false then hdel(q, 's_' .. name) end
  end
  wake(q)
  return {'ok', settings_of(q)}
end
