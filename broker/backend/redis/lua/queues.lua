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
  local head = call('ZRANGE', key, 0, limit - 1, 'WITHSCORES')
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
    total = call('ZCARD', key)
    found = soonest(key, limit)
  else
    local seqs = call('ZRANGE', qk(q) .. ':a', 0, -1)
    total = #seqs
    if not state then
      for _, kind in ipairs({':d', ':l'}) do
        for _, seq in ipairs(call('ZRANGE', qk(q) .. kind, 0, -1)) do seqs[#seqs + 1] = seq end
      end
      total = #seqs
    end
    found = records(seqs)
    table.sort(found, by_place)
  end
  local out = {}
  for _, item in ipairs(found) do
    if #out >= limit then break end
    local sz = body_size(item[1])
    if #out > 0 and budget < sz then break end
    budget = budget - sz
    out[#out + 1] = view(item[1], item[2], true)
  end
  return {'ok', out, total}
end

local function settings_of(q)
  local v = call('HMGET', qk(q) .. ':h', 's_lease', 's_matt', 's_mlen', 's_rate', 's_dwin')
  local out = {}
  for i = 1, 5 do out[i] = tonumber(v[i]) or false end
  return out
end

-- {'stats', q}
ops.stats = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  settle(q)
  flush_meta()
  local h = qk(q) .. ':h'
  local dead = 0
  if exists(q .. DEAD) then dead = size(q .. DEAD) end
  local oldest = call('ZRANGE', qk(q) .. ':a', 0, 0, 'WITHSCORES')
  local age = false
  if oldest[2] then age = C.now - tonumber(oldest[2]) end
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
    call('ZREM', qk(q) .. ':a', seq)
    call('ZREM', qk(q) .. ':r', member(r, seq))
    bump(q, 'nr', -1)
  else
    call('ZREM', qk(q) .. ':d', seq)
    bump(q, 'nd', -1)
  end
  if r[F_KEY] then chain_remove(q, seq, r[F_KEY]) end
  local sz = body_size(seq)
  bump(q, 'by', -sz)
  return sz
end

-- {'purge', q}
ops.purge = function(o)
  local q = o[2]
  if not exists(q) then return {'ok', 0} end
  settle(q)
  local victims = call('ZRANGE', qk(q) .. ':a', 0, -1)
  for _, seq in ipairs(call('ZRANGE', qk(q) .. ':d', 0, -1)) do victims[#victims + 1] = seq end
  for _, item in ipairs(records(victims)) do
    unqueue(q, item[1], item[2])
    forget(item[1])
  end
  bump(q, 'purged', #victims)
  return {'ok', #victims}
end

-- {'redrive', q, ids|false}
ops.redrive = function(o)
  local q, ids = o[2], o[3]
  local src = q .. DEAD
  local moved, leased, missing = {}, {}, {}
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
      moved = records(call('ZRANGE', qk(src) .. ':a', 0, -1))
      table.sort(moved, function(a, b) return a[2][F_ORD] < b[2][F_ORD] end)
    end
    create(q)
    for _, item in ipairs(moved) do
      local seq, r = item[1], item[2]
      local sz = unqueue(src, seq, r)
      r[F_ATT] = 0
      enqueue_moved(seq, r, q, sz)
    end
    bump(q, 'redriven', #moved)
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
      forget(seq)
      removed = removed + 1
    end
  end
  return {'ok', removed, leased, missing}
end

-- delete one queue and everything in it; the number of messages it held
local function drop_queue(q)
  local k = qk(q)
  local n = 0
  for _, kind in ipairs({':a', ':d', ':l'}) do
    for _, item in ipairs(records(call('ZRANGE', k .. kind, 0, -1))) do
      local seq, r = item[1], item[2]
      if r[F_KEY] then call('DEL', k .. ':c:' .. r[F_KEY]) end
      if r[F_ST] == 'l' then call('SREM', C.T .. ':o:' .. r[F_OWN], seq) end
      forget(seq)
      n = n + 1
    end
  end
  for _, seq in ipairs(call('LRANGE', k .. ':al', 0, -1)) do call('HDEL', C.T .. ':ack', seq) end
  for _, wid in ipairs(call('LRANGE', k .. ':w', 0, -1)) do
    local raw = call('HGET', C.T .. ':w', wid)
    if raw then
      local w = unpack(raw)
      drop_waiter(q, wid, w)
      deliver(w[5], wid, {})
    end
  end
  call('DEL', k .. ':h', k .. ':r', k .. ':a', k .. ':d', k .. ':l', k .. ':w', k .. ':wn',
    k .. ':x', k .. ':X', k .. ':al')
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
  call('HSET', qk(o[2]) .. ':h', 'paused', '1')
  return {'ok'}
end

ops.resume = function(o)
  local q = o[2]
  if not exists(q) then return {'e', 'no_queue'} end
  settle(q)
  call('HDEL', qk(q) .. ':h', 'paused')
  wake(q)
  return {'ok'}
end

-- {'config', q, changes}: name -> value, or false to reset it
ops.config = function(o)
  local q, changes = o[2], o[3]
  local h = qk(q) .. ':h'
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
      call('HSET', h, 'tk', n2s(math.min(cap, tk or cap)), 'tkt', n2s(C.now))
    else
      call('HDEL', h, 'tk', 'tkt')
    end
  end
  for _, name in ipairs(SETTINGS) do
    local v = changes[name]
    if v then call('HSET', h, 's_' .. name, n2s(v))
    elseif v == false then call('HDEL', h, 's_' .. name) end
  end
  wake(q)
  return {'ok', settings_of(q)}
end
