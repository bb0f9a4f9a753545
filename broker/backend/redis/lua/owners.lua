-- owners.lua: what connections and node incarnations hold: their waiting GETs
-- (ticks, unwait, collecting deliveries) and their leases (a connection's close, a
-- dead incarnation's reaping, lease counts for STATS).

-- {'tick', q}: fire what is due (the node's timer for its waiting GETs)
ops.tick = function(o)
  local q = o[2]
  settle(q)
  local told = tonumber(hf(q, 'wake'))
  if told and told <= C.now then hdel(q, 'wake') end
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
    call('LREM', qk(q, ':w'), 1, wid)
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
  local ok = owned_key(owner)
  local held = records(call('SMEMBERS', sread(ok)))
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
  drop_buffered(ok)
  call('DEL', ok)
  srem(owners_key(owner), owner)
  return n
end

local function forget_waiter(wid)
  local raw = call('HGET', C.T .. ':w', wid)
  if raw then
    local w = unpack(raw)
    call('LREM', qk(w[1], ':w'), 1, wid)
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
  for _, owner in ipairs(call('SMEMBERS', sread(C.T .. ':os:' .. inc))) do
    n = n + release_owner(owner)
  end
  local wi = C.T .. ':wi:' .. inc
  local waits = call('HKEYS', wi)
  for _, wid in ipairs(waits) do forget_waiter(wid) end
  drop_buffered(C.T .. ':os:' .. inc)
  call('DEL', wi, C.T .. ':dlv:' .. inc, C.T .. ':os:' .. inc)
  return {'ok', n, #waits}
end

-- {'counts', owners}: leases each owner holds
ops.counts = function(o)
  local out = {}
  for i, owner in ipairs(o[2]) do out[i] = call('SCARD', sread(owned_key(owner))) end
  return {'ok', out}
end
