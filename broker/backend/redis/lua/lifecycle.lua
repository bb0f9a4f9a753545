-- lifecycle.lua: the transitions of protocol.md section 3 on Redis keys.
--
-- Per queue q (prefix qk(q)): :h hash (figures, settings, flags), :f list and :r
-- zset of the deliverable ready messages, :a zset of ready messages outside the
-- fifo by put time (see ready.lua), :d zset of delayed messages by due time, :l zset of leased messages by lease deadline, :c:<key> list
-- of a key's messages in put order (only its head may be deliverable), :w list of
-- waiting GETs (arrival order), :wn hash node incarnation -> waiting GETs.
-- Per tag: <T>:o:<owner> set of the ids an owner holds, <T>:os:<inc> set of an
-- incarnation's owners that hold leases, <T>:w hash waiter id -> record,
-- <T>:wi:<inc> hash waiter id -> queue, <T>:dlv:<inc> hash waiter id -> delivery
-- not yet collected by its node. Reads and writes of records, :h, :r, :a, :d, :l
-- and the owners' sets go through store.lua and ready.lua.
-- Must never: leave a queue with both a waiting GET and a deliverable message
-- at the end of an op (dispatch serves them).

local function wake(q) C.woken[q] = true end

local function push_ready(q, seq, r)
  push_deliverable(q, seq, r)
  wake(q)
end

-- a message became READY: counted, and deliverable unless its key holds it back
local function admit(q, seq, r, deliverable)
  r[F_ST] = 'r'
  r[F_DUE] = 0
  bump(q, 'nr', 1)
  if deliverable then push_ready(q, seq, r) else aged_add(q, seq, r) end
end

-- add a keyed message to its chain; true if it is now the head
local function chain_append(q, seq, key)
  return call('RPUSH', qk(q) .. ':c:' .. key, seq) == 1
end

local function chain_is_head(q, seq, key)
  return call('LINDEX', qk(q) .. ':c:' .. key, 0) == seq
end

-- take seq out of its key chain; if it was the head, the next one may become deliverable
local function chain_remove(q, seq, key)
  local ck = qk(q) .. ':c:' .. key
  if call('LINDEX', ck, 0) == seq then
    call('LPOP', ck)
    local nxt = call('LINDEX', ck, 0)
    if nxt then
      local r = load(nxt)
      if r and r[F_ST] == 'r' then push_ready(q, nxt, r) end
    end
  else
    call('LREM', ck, 1, seq)
  end
end

-- rate limit: whole tokens available now (nil: no limit), and the bucket's state
local function bucket(q)
  local rate = tonumber(hf(q, 's_rate'))
  if not rate then return nil end
  local tk, at = tonumber(hf(q, 'tk')) or math.max(1, rate), tonumber(hf(q, 'tkt')) or C.now
  tk = math.min(math.max(1, rate), tk + (C.now - at) * rate / 1000)
  return tk, rate
end

local function take_tokens(q, tk, n)
  call('HSET', qk(q, ':h'), 'tk', n2s(tk - n), 'tkt', n2s(C.now))
  local h = hq(q)
  h.tk, h.tkt = n2s(tk - n), n2s(C.now)
end

-- how many messages a GET may take now (0: none deliverable)
local function allowance(q, max)
  if paused(q) then return 0, nil end
  if deliverable(q) == 0 then return 0, nil end
  local tk = bucket(q)
  if tk then
    local whole = math.floor(tk)
    if whole < max then max = whole end
  end
  return max, tk
end

-- lease up to n deliverable messages of q to owner (n and the rate limit's tokens tk
-- from allowance), or, with peer (an HTTP client), each to a receipt of its own; a
-- list of delivered views {id, queue, attempts, key, headers, body, receipt nonce, due}
local function lease_some(q, owner, n, tk, lease_ms, budget, peer)
  local out = {}
  local seqs = take_deliverable(q, n)
  load_all(seqs)
  local due = C.now + lease_ms
  local lk = qk(q, ':l')
  local owned = not peer and owned_key(owner)
  for _, seq in ipairs(seqs) do
    local r = C.rec[seq]
    r[F_IN] = false
    if budget <= 0 then
      push_deliverable(q, seq, r) -- over the reply budget: back in its place
      save(seq, r)
    else
      aged_drop(q, seq, r)
      local nonce = false
      r[F_ST] = 'l'
      if peer then
        nonce = fmt('%x', next_order(1))
        r[F_OWN] = '~' .. nonce
        r[F_PEER] = peer
      else
        r[F_OWN] = owner
        sadd(owned, seq)
      end
      r[F_ATT] = r[F_ATT] + 1
      r[F_DUE] = due
      save(seq, r)
      zadd(lk, due, seq)
      budget = budget - reply_size(seq, r)
      out[#out + 1] = {seq, q, r[F_ATT], r[F_KEY] or false, r[F_HDR] or false,
        r[F_BODY] or false, nonce, due}
    end
  end
  if #out > 0 then
    bump(q, 'nr', -#out)
    bump(q, 'nl', #out)
    if not peer then sadd(owners_key(owner), owner) end
    if tk then take_tokens(q, tk, #out) end
  end
  return out
end

-- lease up to max deliverable messages of q to owner; a list of delivered views
local function lease_from(q, owner, max, lease_ms, budget, peer)
  local n, tk = allowance(q, max)
  if n <= 0 then return {} end
  return lease_some(q, owner, n, tk, lease_ms, budget, peer)
end

local enqueue_moved

local function dead_letter(src, seq, r)
  local sz = body_size(seq, r)
  bump(src, 'by', -sz)
  bump(src, 'dead_lettered', 1)
  event(src, 'dead_lettered')
  if r[F_KEY] then chain_remove(src, seq, r[F_KEY]) end
  local dst = src .. DEAD
  create(dst)
  enqueue_moved(seq, r, dst, sz)
end

-- append a message that left another queue at the end of dst (READY, a new order)
enqueue_moved = function(seq, r, dst, sz)
  r[F_Q] = dst
  r[F_ORD] = next_order(1)
  bump(dst, 'by', sz)
  local deliverable = (not r[F_KEY]) or chain_append(dst, seq, r[F_KEY])
  admit(dst, seq, r, deliverable)
  save(seq, r)
end

-- end a lease (NACK, expiry, disconnect); true if the message was dead-lettered
local function release(q, seq, r, reason, delay_ms)
  bump(q, reason, 1)
  bump(q, 'nl', -1)
  zrem(qk(q, ':l'), seq)
  if not is_receipt(r[F_OWN]) then srem(owned_key(r[F_OWN]), seq) end
  r[F_OWN] = false
  if r[F_ATT] >= r[F_MAXATT] and not is_dead(q) then
    dead_letter(q, seq, r)
    return true
  end
  if delay_ms > 0 then
    r[F_ST] = 'd'
    r[F_DUE] = C.now + delay_ms
    zadd(qk(q, ':d'), r[F_DUE], seq)
    bump(q, 'nd', 1)
  else
    admit(q, seq, r, true) -- a leased keyed message is the head of its chain
  end
  save(seq, r)
  return false
end

-- waiting GETs ---------------------------------------------------------------

-- hand a waiting GET its messages: in this call's reply if it is the caller's,
-- else stored for its node (with the bodies, at the call's end), which is told on
-- its channel
local function deliver(inc, wid, msgs)
  if inc == C.inc then
    C.deliveries[#C.deliveries + 1] = {wid, msgs}
    return
  end
  C.remote[#C.remote + 1] = {inc, wid, msgs}
  C.publish[inc] = true
end

local function drop_waiter(q, wid, w)
  call('HDEL', C.T .. ':w', wid)
  call('HDEL', C.T .. ':wi:' .. w[5], wid)
  bump(q, 'nw', -1)
  if call('HINCRBY', qk(q, ':wn'), w[5], -1) <= 0 then call('HDEL', qk(q, ':wn'), w[5]) end
end

local function add_waiter(q, wid, owner, max, lease_ms, budget, peer)
  local inc = owner_inc(owner)
  call('RPUSH', qk(q, ':w'), wid)
  call('HSET', C.T .. ':w', wid, pack({q, owner, max, lease_ms, inc, budget, peer or false}))
  call('HSET', C.T .. ':wi:' .. inc, wid, q)
  call('HINCRBY', qk(q, ':wn'), inc, 1)
  bump(q, 'nw', 1)
end

-- serve the waiting GETs of q in arrival order while messages are deliverable
local function dispatch(q)
  local wk = qk(q, ':w')
  while figure(q, 'nw') > 0 and allowance(q, 1) > 0 do
    local wid = call('LPOP', wk)
    if not wid then break end
    local raw = call('HGET', C.T .. ':w', wid)
    if raw then
      local w = unpack(raw)
      drop_waiter(q, wid, w)
      deliver(w[5], wid, lease_from(q, w[2], w[3], w[4], w[6], w[7]))
    end
  end
end

local function dispatch_woken()
  while next(C.woken) do
    local woken = C.woken
    C.woken = {}
    for q in pairs(woken) do dispatch(q) end
  end
end

-- time ------------------------------------------------------------------------

local SETTLE_MAX = 1000 -- due items handled per queue and call (the rest: the next call)

-- fire what is due in q: delays end and leases expire, instant by instant, in
-- queue order within an instant, waiters served after each instant
local function settle(q)
  if C.settled[q] then return end
  C.settled[q] = true
  if is_dead(q) then settle(q:sub(1, -6)) end -- its source may dead-letter into it first
  local now = n2s(C.now)
  local due = {}
  for _, kind in ipairs({':d', ':l'}) do
    local key = qk(q, kind)
    zflush(key)
    for _, seq in ipairs(call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, SETTLE_MAX)) do
      due[#due + 1] = seq
    end
  end
  if #due == 0 then return end
  local items = records(due)
  table.sort(items, function(a, b)
    if a[2][F_DUE] ~= b[2][F_DUE] then return a[2][F_DUE] < b[2][F_DUE] end
    return a[2][F_ORD] < b[2][F_ORD]
  end)
  local i = 1
  while i <= #items do
    local at = items[i][2][F_DUE]
    while i <= #items and items[i][2][F_DUE] == at do
      local seq, r = items[i][1], items[i][2]
      if r[F_ST] == 'l' then
        event(q, 'expired')
        release(q, seq, r, 'expired', 0)
      else
        zrem(qk(q, ':d'), seq)
        bump(q, 'nd', -1)
        admit(q, seq, r, (not r[F_KEY]) or chain_is_head(q, seq, r[F_KEY]))
        save(seq, r)
      end
      i = i + 1
    end
    dispatch_woken()
  end
end

-- when q next needs a tick: a delay ends, a lease runs out, or (for waiting GETs
-- held back by the rate limit) a token comes back; nil if never
local function next_deadline(q)
  local nd = nil
  for _, kind in ipairs({':d', ':l'}) do
    local first = zhead(qk(q, kind), 1)
    if first[2] then
      local at = tonumber(first[2])
      if not nd or at < nd then nd = at end
    end
  end
  if figure(q, 'nw') > 0 and not paused(q) and deliverable(q) > 0 then
    local tk, rate = bucket(q)
    if tk and tk < 1 then
      local at = C.now + (1 - tk) * 1000 / rate
      if not nd or at < nd then nd = at end
    end
  end
  return nd
end

-- the end of a call: nodes with waiting GETs on a queue learn its next deadline
-- (the caller in its reply, the others on their channel when it moved earlier)
local function finish()
  dispatch_woken()
  flush_meta()
  local wakes = {}
  for _, q in ipairs(C.touched_list) do
    if figure(q, 'nw') > 0 then
      local nd = next_deadline(q)
      if nd then
        wakes[#wakes + 1] = {q, nd}
        local told = tonumber(hf(q, 'wake'))
        if not told or nd < told or told <= C.now then
          hset(q, 'wake', n2s(nd))
          for _, inc in ipairs(call('HKEYS', qk(q, ':wn'))) do
            if inc ~= C.inc then
              redis.call('PUBLISH', 'wq:wake:' .. inc, 't ' .. C.T .. ' ' .. n2s(nd) .. ' ' .. q)
            end
          end
        end
      end
    end
  end
  return wakes
end

-- the deliveries this call made for other nodes: stored with their bodies, and each
-- node told on its channel
local function store_remote()
  if #C.remote == 0 then return end
  local long = {}
  for _, d in ipairs(C.remote) do
    for _, m in ipairs(d[3]) do
      if not m[6] then long[#long + 1] = m[1] end
    end
  end
  local bodies = long_bodies(long)
  local by_inc = {}
  for _, d in ipairs(C.remote) do
    for _, m in ipairs(d[3]) do m[6] = m[6] or bodies[m[1]] end -- the body travels inside it
    local args = by_inc[d[1]]
    if not args then args = {}; by_inc[d[1]] = args end
    args[#args + 1] = d[2]
    args[#args + 1] = pack(d[3])
  end
  for inc, args in pairs(by_inc) do variadic('HSET', C.T .. ':dlv:' .. inc, args, true) end
  for inc in pairs(C.publish) do
    redis.call('PUBLISH', 'wq:wake:' .. inc, 'd ' .. C.T)
  end
end
