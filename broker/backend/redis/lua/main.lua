-- main.lua: the library's entry points.
--
-- <prefix>_call(keys = {tag prefix}, args = {msgpack head, body...}) runs a node's
-- ops on one hash tag and returns {msgpack {results, wakes, deliveries, events, now,
-- queues made}, body...}: bodies travel as plain bulk strings, never inside msgpack.
-- <prefix>_node(keys = {nodes prefix}, args = {msgpack op}) keeps the node registry:
-- heartbeats, duplicate node ids, the reaping of dead incarnations, the queue names.

local function run(keys, args)
  local head = unpack(args[1])
  begin(keys, args, head)
  if call('ZSCORE', C.T .. ':dead', C.inc) then return {pack({'fenced'})} end
  prefetch(head[4])
  local results = {}
  for i, o in ipairs(head[4]) do
    results[i] = ops[o[1]](o)
    dispatch_woken()
  end
  local wakes = finish()
  for _, d in ipairs(C.deliveries) do msgs_out(d[2]) end
  local events = {}
  for key, n in pairs(C.events) do
    local q, name = key:match('^(.*)%z(.*)$')
    events[#events + 1] = {q, name, n}
  end
  local bodies = reply_bodies()
  store_remote()
  store_flush()
  forget_idle()
  local out = {pack({results, wakes, C.deliveries, events, C.now, C.created})}
  for _, b in ipairs(bodies) do out[#out + 1] = b end
  return out
end

local node_ops = {}

-- {'join', id, inc, ttl_ms, info, previous inc|false}: {'ok'} or {'taken', live
-- incarnation, ms left}; a node may replace an incarnation of its own it gave up
node_ops.join = function(N, o, now)
  local hb = N .. ':hb:' .. o[2]
  local live = call('GET', hb)
  if live and live ~= o[3] and live ~= o[6] then return {'taken', live, call('PTTL', hb)} end
  call('SET', hb, o[3], 'PX', o[4])
  call('ZADD', N .. ':reg', n2s(now), o[3])
  call('HSET', N .. ':info', o[3], o[5])
  return {'ok'}
end

-- {'beat', id, inc, ttl_ms, info}: {'lost'} if this incarnation was given up, else
-- {'ok', {{dead incarnation, its tags}, ...}}: the caller reaps them
node_ops.beat = function(N, o, now)
  local hb = N .. ':hb:' .. o[2]
  if call('GET', hb) ~= o[3] or not call('ZSCORE', N .. ':reg', o[3]) then return {'lost'} end
  call('SET', hb, o[3], 'PX', o[4])
  call('ZADD', N .. ':reg', n2s(now), o[3])
  call('HSET', N .. ':info', o[3], o[5])
  local cutoff = n2s(now - o[4])
  local dead = call('ZRANGEBYSCORE', N .. ':reg', '-inf', cutoff)
  for _, d in ipairs(dead) do
    call('ZREM', N .. ':reg', d)
    call('HDEL', N .. ':info', d)
  end
  -- a reaper that died before it finished: its claims are taken again
  for _, d in ipairs(call('ZRANGEBYSCORE', N .. ':reaping', '-inf', cutoff)) do
    dead[#dead + 1] = d
  end
  local out = {}
  for _, d in ipairs(dead) do
    call('ZADD', N .. ':reaping', n2s(now), d)
    out[#out + 1] = {d, call('SMEMBERS', N .. ':tags:' .. d)}
  end
  return {'ok', out}
end

-- {'reaped', inc}: every tag of inc was reaped
node_ops.reaped = function(N, o, now)
  call('ZREM', N .. ':reaping', o[2])
  call('DEL', N .. ':tags:' .. o[2])
  return {'ok'}
end

-- {'tags', inc, {tag...}}: inc may hold leases or waits on these tags
node_ops.tags = function(N, o, now)
  for _, tag in ipairs(o[3]) do call('SADD', N .. ':tags:' .. o[2], tag) end
  return {'ok'}
end

-- {'leave', id, inc}: a graceful stop (its connections are closed: nothing to reap)
node_ops.leave = function(N, o, now)
  local hb = N .. ':hb:' .. o[2]
  if call('GET', hb) == o[3] then call('DEL', hb) end
  call('ZREM', N .. ':reg', o[3])
  call('HDEL', N .. ':info', o[3])
  call('DEL', N .. ':tags:' .. o[3])
  return {'ok'}
end

-- {'nodes'}: {{inc, info}, ...} of the live nodes
node_ops.nodes = function(N, o, now)
  local all = call('HGETALL', N .. ':info')
  local out = {}
  for j = 1, #all, 2 do out[#out + 1] = {all[j], all[j + 1]} end
  return {'ok', out}
end

-- {'queues', {name...}}: remember the names of queues made (QUEUES and STATS list
-- them; a name whose queue is gone since costs a lookup, never a wrong listing)
node_ops.queues = function(N, o, now)
  for _, name in ipairs(o[2]) do call('ZADD', N .. ':names', 0, name) end
  return {'ok'}
end

-- {'unname', {name...}}: names whose queue was found gone (deleted or forgotten); the
-- node looks again after this, and names again any made meanwhile
node_ops.unname = function(N, o, now)
  if #o[2] > 0 then variadic('ZREM', N .. ':names', o[2]) end
  return {'ok'}
end

-- {'names', prefix, after|false, count}: up to count remembered names that start with
-- prefix, after `after` (false: from the first), in order
node_ops.names = function(N, o, now)
  local lo = o[3] and ('(' .. o[3]) or ('[' .. o[2])
  local hi = '+'
  if o[2] ~= '' then hi = '[' .. o[2] .. '\255' end -- no UTF-8 text holds byte 255
  return {'ok', call('ZRANGEBYLEX', N .. ':names', lo, hi, 'LIMIT', 0, o[4])}
end

local function node(keys, args)
  local o = unpack(args[1])
  local now = clock(o[#o])
  return pack(node_ops[o[1]](keys[1], o, now))
end
