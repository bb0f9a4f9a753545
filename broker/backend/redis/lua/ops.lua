-- ops.lua: one handler per op of a call. Each reads and checks everything it
-- needs, then writes; it returns {'ok', ...}, {'wait'} or {'e', code, ...} (the
-- node words the error message). Dispatching waiters and the per-queue figures
-- are the call's end (finish).

local COUNTERS = {'put', 'acked', 'nacked', 'expired', 'released_on_disconnect',
  'dead_lettered', 'redriven', 'purged'}
local SETTINGS = {'lease', 'matt', 'mlen', 'rate', 'dwin'}

local function body_out(seq)
  C.bodies[#C.bodies + 1] = call('HGET', C.T .. ':b', seq)
  return #C.bodies
end

local function msgs_out(msgs)
  for _, m in ipairs(msgs) do m[6] = body_out(m[1]) end
  return msgs
end

local function default_lease(q)
  local s = setting(q, 'lease')
  if s then return s * 1000 end
  return C.d[1]
end

-- the record of seq, its due items fired first if it is past a deadline
local function current(seq)
  local r = load(seq)
  if r and r[F_ST] ~= 'r' and r[F_DUE] <= C.now then
    settle(r[F_Q])
    r = load(seq)
  end
  return r
end

-- 0 leased by owner, 1 acked already, 2 not leased by owner, 3 not found
local function lease_status(seq, r, owner)
  if not r then
    if call('HEXISTS', C.T .. ':ack', seq) == 1 then return 1 end
    return 3
  end
  if r[F_ST] ~= 'l' or r[F_OWN] ~= owner then return 2 end
  return 0
end

local ops = {}

-- {'put', q, items, first body index}; item {key, delay_ms, prio, maxatt, dedup, headers}
ops.put = function(o)
  local q, items, bi = o[2], o[3], o[4]
  settle(q)
  local xk, xz = qk(q) .. ':x', qk(q) .. ':X'
  local ids, dups, first_of, n_new = {}, {}, {}, 0
  for i, it in ipairs(items) do
    local dd = it[5]
    if dd then
      if first_of[dd] then
        ids[i] = first_of[dd]
      else
        local exp = tonumber(call('ZSCORE', xz, dd))
        if exp and exp > C.now then ids[i] = call('HGET', xk, dd) end
      end
      if ids[i] then dups[#dups + 1] = i - 1 end
    end
    if not ids[i] then
      n_new = n_new + 1
      if dd then first_of[dd] = i end
    end
  end
  local limit = setting(q, 'mlen')
  local by_setting = limit ~= nil
  if not limit then limit = C.d[3] end
  local held = size(q)
  if limit and held + n_new > limit then return {'e', 'queue_full', held, limit, by_setting} end
  -- checked: now write
  create(q)
  local order = next_order(n_new)
  local matt = setting(q, 'matt') or C.d[2]
  local window = (setting(q, 'dwin') or C.d[5]) * 1000
  local total = 0
  for i, it in ipairs(items) do
    if type(ids[i]) == 'number' then ids[i] = ids[ids[i]] end
    if not ids[i] then
      local seq = fmt('%x', order)
      local body = C.args[bi + i - 1]
      local r = {q, 'r', 0, it[4] or matt, it[3], C.now, 0, false, it[1] or false, order,
        it[6] or false}
      order = order + 1
      call('HSET', C.T .. ':b', seq, body)
      total = total + #body
      local head = true
      if r[F_KEY] then head = chain_append(q, seq, r[F_KEY]) end
      if it[2] > 0 then
        r[F_ST] = 'd'
        r[F_DUE] = C.now + it[2]
        call('ZADD', qk(q) .. ':d', n2s(r[F_DUE]), seq)
        bump(q, 'nd', 1)
      else
        admit(q, seq, r, head)
      end
      save(seq, r)
      ids[i] = seq
      if it[5] then
        call('HSET', xk, it[5], seq)
        call('ZADD', xz, n2s(C.now + window), it[5])
      end
    end
  end
  -- dedup ids: the expired ones go, and at most max-dedup-ids stay
  for _, dd in ipairs(call('ZRANGEBYSCORE', xz, '-inf', n2s(C.now), 'LIMIT', 0, 100)) do
    call('ZREM', xz, dd)
    call('HDEL', xk, dd)
  end
  local over = call('ZCARD', xz) - C.d[6]
  if over > 0 then
    local gone = call('ZPOPMIN', xz, over)
    for j = 1, #gone, 2 do call('HDEL', xk, gone[j]) end
    bump(q, 'dedup_evicted', over)
  end
  bump(q, 'put', n_new)
  bump(q, 'by', total)
  return {'ok', ids, dups}
end

-- {'get', q, owner, max, lease_ms|false, waiter id|false, budget}
ops.get = function(o)
  local q, owner, max = o[2], o[3], o[4]
  settle(q)
  local lease_ms = o[5] or default_lease(q)
  if allowance(q, 1) > 0 then
    return {'ok', msgs_out(lease_from(q, owner, max, lease_ms, o[7]))}
  end
  if not o[6] then return {'ok', {}} end
  add_waiter(q, o[6], owner, max, lease_ms, o[7])
  return {'wait'}
end

-- {'ack', owner, ids}: a status per id (see lease_status)
ops.ack = function(o)
  local owner, out = o[2], {}
  local hist = C.d[4]
  for i, seq in ipairs(o[3]) do
    local r = current(seq)
    local status = lease_status(seq, r, owner)
    out[i] = status
    if status == 0 then
      local q = r[F_Q]
      local sz = body_size(seq)
      forget(seq)
      call('ZREM', qk(q) .. ':l', seq)
      call('SREM', C.T .. ':o:' .. owner, seq)
      bump(q, 'nl', -1)
      bump(q, 'by', -sz)
      bump(q, 'acked', 1)
      if hist > 0 then -- remembered, so a late ACK or INFO can say "acked"
        call('HSET', C.T .. ':ack', seq, pack({q, r[F_ATT]}))
        local al = qk(q) .. ':al'
        if call('RPUSH', al, seq) > hist then call('HDEL', C.T .. ':ack', call('LPOP', al)) end
      end
      if r[F_KEY] then chain_remove(q, seq, r[F_KEY]) end
    end
  end
  return {'ok', out}
end

-- {'nack', owner, id, delay_ms}
ops.nack = function(o)
  local seq = o[3]
  local r = current(seq)
  local status = lease_status(seq, r, o[2])
  if status ~= 0 then return {'e', 'lease', status} end
  return {'ok', release(r[F_Q], seq, r, 'nacked', o[4])}
end

-- {'touch', owner, id, lease_ms}
ops.touch = function(o)
  local seq = o[3]
  local r = current(seq)
  local status = lease_status(seq, r, o[2])
  if status ~= 0 then return {'e', 'lease', status} end
  r[F_DUE] = C.now + o[4]
  call('ZADD', qk(r[F_Q]) .. ':l', n2s(r[F_DUE]), seq)
  save(seq, r)
  return {'ok'}
end

local function view(seq, r, with_holder)
  local state = r[F_ST]
  if state == 'r' and is_dead(r[F_Q]) then state = 'dead' end
  local left = false
  if r[F_ST] ~= 'r' then left = math.max(0, r[F_DUE] - C.now) end
  local holder = false
  if with_holder and r[F_ST] == 'l' then holder = r[F_OWN] end
  return {seq, r[F_Q], state, r[F_ATT], r[F_MAXATT], r[F_PRIO], C.now - r[F_PUT],
    body_out(seq), r[F_KEY] or false, r[F_HDR] or false, left, holder}
end

-- {'info', id}
ops.info = function(o)
  local seq = o[2]
  local r = current(seq)
  if r then return {'ok', view(seq, r)} end
  local acked = call('HGET', C.T .. ':ack', seq)
  if acked then return {'acked', unpack(acked)} end
  return {'e', 'not_found'}
end

local function records(seqs)
  local out = {}
  for _, seq in ipairs(seqs) do
    local r = load(seq)
    if r then out[#out + 1] = {seq, r} end
  end
  return out
end

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
    local sz = reply_size(item[1], item[2])
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
    if #moved > 0 then create(q) end -- a REDRIVE with nothing to move makes no queue
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
  C.emptied[q] = true -- idle now, perhaps
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
    elseif v == false then call('HDEL', h, 's_' .. name); C.emptied[q] = true end
  end
  wake(q)
  return {'ok', settings_of(q)}
end

-- {'tick', q}: fire what is due (the node's timer for its waiting GETs)
ops.tick = function(o)
  local q = o[2]
  settle(q)
  local told = tonumber(call('HGET', qk(q) .. ':h', 'wake'))
  if told and told <= C.now then call('HDEL', qk(q) .. ':h', 'wake') end
  wake(q)
  touch(q)
  return {'ok'}
end

-- {'unwait', q, waiter id}: end a waiting GET; 'gone' if it was still waiting,
-- else its delivery (served meanwhile) or 'none'
ops.unwait = function(o)
  local q, wid = o[2], o[3]
  local raw = call('HGET', C.T .. ':w', wid)
  if raw then
    call('LREM', qk(q) .. ':w', 1, wid)
    drop_waiter(q, wid, unpack(raw))
    return {'gone'}
  end
  local dk = C.T .. ':dlv:' .. C.inc
  local stored = call('HGET', dk, wid)
  if stored then
    call('HDEL', dk, wid)
    return {'dlv', unpack(stored)}
  end
  return {'none'}
end

-- release every lease of owner (sorted in queue order); how many
local function release_owner(owner)
  local ok = C.T .. ':o:' .. owner
  local held = records(call('SMEMBERS', ok))
  table.sort(held, function(a, b) return a[2][F_ORD] < b[2][F_ORD] end)
  local n = 0
  for _, item in ipairs(held) do
    settle(item[2][F_Q]) -- a lease past its deadline expired then, before this release
    local r = load(item[1])
    if r and r[F_ST] == 'l' and r[F_OWN] == owner then
      release(r[F_Q], item[1], r, 'released_on_disconnect', 0)
      n = n + 1
    end
  end
  call('DEL', ok)
  call('SREM', C.T .. ':os:' .. owner_inc(owner), owner)
  return n
end

local function forget_waiter(wid)
  local raw = call('HGET', C.T .. ':w', wid)
  if raw then
    local w = unpack(raw)
    call('LREM', qk(w[1]) .. ':w', 1, wid)
    drop_waiter(w[1], wid, w)
  end
end

-- {'close', owner, waiter ids}: the connection is gone
ops.close = function(o)
  for _, wid in ipairs(o[3]) do
    forget_waiter(wid)
    call('HDEL', C.T .. ':dlv:' .. C.inc, wid)
  end
  return {'ok', release_owner(o[2])}
end

-- {'collect'}: the deliveries stored for the caller's node
ops.collect = function(o)
  local dk = C.T .. ':dlv:' .. C.inc
  local all = call('HGETALL', dk)
  call('DEL', dk)
  local out = {}
  for j = 1, #all, 2 do out[#out + 1] = {all[j], unpack(all[j + 1])} end
  return {'ok', out}
end

-- {'reap', inc}: a dead node's incarnation: fenced, its leases released, its waits gone
ops.reap = function(o)
  local inc = o[2]
  call('ZADD', C.T .. ':dead', n2s(C.now), inc)
  call('ZREMRANGEBYSCORE', C.T .. ':dead', '-inf', n2s(C.now - 86400000))
  local n = 0
  for _, owner in ipairs(call('SMEMBERS', C.T .. ':os:' .. inc)) do
    n = n + release_owner(owner)
  end
  local wi = C.T .. ':wi:' .. inc
  local waits = call('HKEYS', wi)
  for _, wid in ipairs(waits) do forget_waiter(wid) end
  call('DEL', wi, C.T .. ':dlv:' .. inc, C.T .. ':os:' .. inc)
  return {'ok', n, #waits}
end

-- {'counts', owners}: leases each owner holds
ops.counts = function(o)
  local out = {}
  for i, owner in ipairs(o[2]) do out[i] = call('SCARD', C.T .. ':o:' .. owner) end
  return {'ok', out}
end
