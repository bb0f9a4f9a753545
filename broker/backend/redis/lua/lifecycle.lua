-- lifecycle.lua: the transitions of protocol.md section 3 on Redis keys.
--
-- Per queue q (prefix qk(q)): :h hash (figures, settings, flags), :r zset of the
-- deliverable ready messages (score priority, member 14 hex digits of the order
-- followed by the id, so ties go in queue order), :a zset of every ready message by
-- put time (held back by a key or not: STATS' oldest_ready_age), :d zset of delayed
-- messages by due time, :l zset of leased messages by lease deadline, :c:<key> list
-- of a key's messages in put order (only its head may be deliverable), :w list of
-- waiting GETs (arrival order), :wn hash node incarnation -> waiting GETs.
-- Per tag: <T>:o:<owner> set of the ids an owner holds, <T>:os:<inc> set of an
-- incarnation's owners that hold leases, <T>:w hash waiter id -> record,
-- <T>:wi:<inc> hash waiter id -> queue, <T>:dlv:<inc> hash waiter id -> delivery
-- not yet collected by its node.
-- Must never: leave a queue with both a waiting GET and a deliverable message
-- at the end of an op (dispatch serves them).

local function member(r, seq) return fmt('%014x', r[F_ORD]) .. seq end

local function wake(q) C.woken[q] = true end

local function push_ready(q, seq, r)
  call('ZADD', qk(q) .. ':r', r[F_PRIO], member(r, seq))
  wake(q)
end

-- a message became READY: counted, and deliverable unless its key holds it back
local function admit(q, seq, r, deliverable)
  r[F_ST] = 'r'
  r[F_DUE] = 0
  bump(q, 'nr', 1)
  call('ZADD', qk(q) .. ':a', n2s(r[F_PUT]), seq)
  if deliverable then push_ready(q, seq, r) end
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
  local h = qk(q) .. ':h'
  local rate = tonumber(call('HGET', h, 's_rate'))
  if not rate then return nil end
  local v = call('HMGET', h, 'tk', 'tkt')
  local tk, at = tonumber(v[1]) or math.max(1, rate), tonumber(v[2]) or C.now
  tk = math.min(math.max(1, rate), tk + (C.now - at) * rate / 1000)
  return tk, rate
end

local function take_tokens(q, tk, n)
  call('HSET', qk(q) .. ':h', 'tk', n2s(tk - n), 'tkt', n2s(C.now))
end

local function paused(q) return call('HEXISTS', qk(q) .. ':h', 'paused') == 1 end

-- how many messages a GET may take now (0: none deliverable)
local function allowance(q, max)
  if paused(q) then return 0, nil end
  if call('ZCARD', qk(q) .. ':r') == 0 then return 0, nil end
  local tk = bucket(q)
  if tk then
    local whole = math.floor(tk)
    if whole < max then max = whole end
  end
  return max, tk
end

-- lease up to max deliverable messages of q to owner; a list of delivered views
local function lease_from(q, owner, max, lease_ms, budget)
  local n, tk = allowance(q, max)
  local out = {}
  if n <= 0 then return out end
  local rk, lk = qk(q) .. ':r', qk(q) .. ':l'
  local popped = call('ZPOPMIN', rk, n)
  local due = C.now + lease_ms
  local owned = C.T .. ':o:' .. owner
  local i = 1
  while i < #popped do
    local mem = popped[i]
    local seq = mem:sub(15)
    if budget <= 0 then
      call('ZADD', rk, popped[i + 1], mem) -- over the reply budget: back in place
    else
      local r = load(seq)
      r[F_ST] = 'l'
      r[F_OWN] = owner
      r[F_ATT] = r[F_ATT] + 1
      r[F_DUE] = due
      save(seq, r)
      call('ZADD', lk, n2s(due), seq)
      call('ZREM', qk(q) .. ':a', seq)
      call('SADD', owned, seq)
      budget = budget - reply_size(seq, r)
      out[#out + 1] = {seq, q, r[F_ATT], r[F_KEY] or false, r[F_HDR] or false, seq}
    end
    i = i + 2
  end
  if #out > 0 then
    bump(q, 'nr', -#out)
    bump(q, 'nl', #out)
    call('SADD', C.T .. ':os:' .. owner_inc(owner), owner)
    if tk then take_tokens(q, tk, #out) end
  end
  return out
end

local enqueue_moved

local function dead_letter(src, seq, r)
  local sz = body_size(seq)
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
  call('ZREM', qk(q) .. ':l', seq)
  call('SREM', C.T .. ':o:' .. r[F_OWN], seq)
  r[F_OWN] = false
  if r[F_ATT] >= r[F_MAXATT] and not is_dead(q) then
    dead_letter(q, seq, r)
    return true
  end
  if delay_ms > 0 then
    r[F_ST] = 'd'
    r[F_DUE] = C.now + delay_ms
    call('ZADD', qk(q) .. ':d', n2s(r[F_DUE]), seq)
    bump(q, 'nd', 1)
  else
    admit(q, seq, r, true) -- a leased keyed message is the head of its chain
  end
  save(seq, r)
  return false
end

-- waiting GETs ---------------------------------------------------------------

-- hand a waiting GET its messages: in this call's reply if it is the caller's,
-- else stored for its node, which is told on its channel
local function deliver(inc, wid, msgs)
  if inc == C.inc then
    C.deliveries[#C.deliveries + 1] = {wid, msgs}
    return
  end
  for _, m in ipairs(msgs) do
    m[6] = call('HGET', C.T .. ':b', m[1]) -- the body travels inside the stored delivery
  end
  call('HSET', C.T .. ':dlv:' .. inc, wid, pack(msgs))
  C.publish[inc] = true
end

local function drop_waiter(q, wid, w)
  call('HDEL', C.T .. ':w', wid)
  call('HDEL', C.T .. ':wi:' .. w[5], wid)
  bump(q, 'nw', -1)
  if call('HINCRBY', qk(q) .. ':wn', w[5], -1) <= 0 then call('HDEL', qk(q) .. ':wn', w[5]) end
end

local function add_waiter(q, wid, owner, max, lease_ms, budget)
  local inc = owner_inc(owner)
  call('PERSIST', qk(q) .. ':h') -- an idle queue with a waiter is not forgotten
  call('RPUSH', qk(q) .. ':w', wid)
  call('HSET', C.T .. ':w', wid, pack({q, owner, max, lease_ms, inc, budget}))
  call('HSET', C.T .. ':wi:' .. inc, wid, q)
  call('HINCRBY', qk(q) .. ':wn', inc, 1)
  bump(q, 'nw', 1)
end

-- serve the waiting GETs of q in arrival order while messages are deliverable
local function dispatch(q)
  local wk = qk(q) .. ':w'
  while figure(q, 'nw') > 0 and allowance(q, 1) > 0 do
    local wid = call('LPOP', wk)
    if not wid then break end
    local raw = call('HGET', C.T .. ':w', wid)
    if raw then
      local w = unpack(raw)
      drop_waiter(q, wid, w)
      deliver(w[5], wid, lease_from(q, w[2], w[3], w[4], w[6]))
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
  local items = {}
  for _, kind in ipairs({':d', ':l'}) do
    for _, seq in ipairs(call('ZRANGEBYSCORE', qk(q) .. kind, '-inf', now, 'LIMIT', 0, SETTLE_MAX)) do
      local r = load(seq)
      if r then items[#items + 1] = {seq, r} end
    end
  end
  if #items == 0 then return end
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
        call('ZREM', qk(q) .. ':d', seq)
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
    local first = call('ZRANGE', qk(q) .. kind, 0, 0, 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if not nd or at < nd then nd = at end
    end
  end
  if figure(q, 'nw') > 0 and not paused(q) and call('ZCARD', qk(q) .. ':r') > 0 then
    local tk, rate = bucket(q)
    if tk and tk < 1 then
      local at = C.now + (1 - tk) * 1000 / rate
      if not nd or at < nd then nd = at end
    end
  end
  return nd
end

-- forgetting: a queue that may have become idle in this call (something left it) is
-- forgotten forget_ms later (C.d[7]) unless something makes it busy first (create and
-- add_waiter remove the expiry): its :h (existence, counters) expires, with its dedup
-- keys once their last id is past its window; its acked list stays (it bounds the acked
-- records of the tag, at most acked-history per queue). The :h of a name without a
-- queue holds only its waiting GETs' count: it goes with the last of them.
local function forget_later(q)
  local k = qk(q)
  local f = call('HMGET', k .. ':h', 'ex', 'nw', 'nr', 'nd', 'nl', 'paused',
    's_lease', 's_matt', 's_mlen', 's_rate', 's_dwin')
  if (tonumber(f[2]) or 0) > 0 then return end -- waiting GETs
  if not f[1] then call('DEL', k .. ':h'); return end -- no queue, and no waiter left
  for i = 3, 5 do if (tonumber(f[i]) or 0) > 0 then return end end
  for i = 6, 11 do if f[i] then return end end
  local ttl = C.d[7]
  local last = call('ZRANGE', k .. ':X', -1, -1, 'WITHSCORES')
  if last[2] then ttl = math.max(ttl, tonumber(last[2]) - C.now + C.d[7]) end
  ttl = math.max(1, math.floor(ttl))
  call('PEXPIRE', k .. ':h', ttl)
  if last[2] then
    call('PEXPIRE', k .. ':x', ttl)
    call('PEXPIRE', k .. ':X', ttl)
  end
end

-- the end of a call: nodes with waiting GETs on a queue learn its next deadline
-- (the caller in its reply, the others on their channel when it moved earlier)
local function finish()
  dispatch_woken()
  flush_meta()
  local wakes = {}
  for _, q in ipairs(C.touched_list) do
    if exists(q) or call('EXISTS', qk(q) .. ':w') == 1 then
      local h = qk(q) .. ':h'
      if (tonumber(call('HGET', h, 'nw')) or 0) > 0 then
        local nd = next_deadline(q)
        if nd then
          wakes[#wakes + 1] = {q, nd}
          local told = tonumber(call('HGET', h, 'wake'))
          if not told or nd < told or told <= C.now then
            call('HSET', h, 'wake', n2s(nd))
            local wn = call('HKEYS', qk(q) .. ':wn')
            for _, inc in ipairs(wn) do
              if inc ~= C.inc then
                redis.call('PUBLISH', 'wq:wake:' .. inc, 't ' .. C.T .. ' ' .. n2s(nd) .. ' ' .. q)
              end
            end
          end
        end
      end
    end
  end
  for inc in pairs(C.publish) do
    redis.call('PUBLISH', 'wq:wake:' .. inc, 'd ' .. C.T)
  end
  for q in pairs(C.emptied) do forget_later(q) end
  return wakes
end
