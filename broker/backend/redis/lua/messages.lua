-- messages.lua: the ops on messages: PUT, GET, ACK, NACK, TOUCH and INFO. Each
-- reads and checks everything it needs, then writes; it returns {'ok', ...}, {'wait'}
-- or {'e', code, ...} (the node words the error message). Dispatching waiters and the
-- per-queue figures are the call's end (finish).

local function msgs_out(msgs)
  for _, m in ipairs(msgs) do m[6] = body_ref(m[1], m[6]) end
  return msgs
end

local function default_lease(q)
  local s = setting(q, 's_lease')
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
    if acked(seq) then return 1 end
    return 3
  end
  if r[F_ST] ~= 'l' or r[F_OWN] ~= owner then return 2 end
  return 0
end


-- {'put', q, items, first body index}; item {key, delay_ms, prio, maxatt, dedup, headers}
ops.put = function(o)
  local q, items, bi = o[2], o[3], o[4]
  settle(q)
  local xk, xz = qk(q, ':x'), qk(q, ':X')
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
  local limit = setting(q, 's_mlen')
  local by_setting = limit ~= nil
  if not limit then limit = C.d[3] end
  if limit then
    local held = size(q)
    if held + n_new > limit then return {'e', 'queue_full', held, limit, by_setting} end
  end
  -- checked: now write
  create(q)
  local order = next_order(n_new)
  local matt = setting(q, 's_matt') or C.d[2]
  local window = (setting(q, 's_dwin') or C.d[5]) * 1000
  local total, deduped = 0, false
  local dk = qk(q, ':d')
  for i, it in ipairs(items) do
    if type(ids[i]) == 'number' then ids[i] = ids[ids[i]] end
    if not ids[i] then
      local seq = fmt('%x', order)
      local body = C.args[bi + i - 1]
      local inline = #body <= BODY_INLINE_MAX
      local r = {q, 'r', 0, it[4] or matt, it[3], C.now, 0, false, it[1] or false, order,
        it[6] or false, #body, inline and body, false, false, false}
      order = order + 1
      if not inline then body_add(seq, body) end
      total = total + #body
      local head = true
      if r[F_KEY] then head = chain_append(q, seq, r[F_KEY]) end
      if it[2] > 0 then
        r[F_ST] = 'd'
        r[F_DUE] = C.now + it[2]
        zadd(dk, r[F_DUE], seq)
        bump(q, 'nd', 1)
      else
        admit(q, seq, r, head)
      end
      save(seq, r)
      ids[i] = seq
      if it[5] then
        call('HSET', xk, it[5], seq)
        call('ZADD', xz, n2s(C.now + window), it[5])
        deduped = true
      end
    end
  end
  if deduped then -- dedup ids: the expired ones go, and at most max-dedup-ids stay
    if C.now + window > (tonumber(hf(q, 'xu')) or 0) then hset(q, 'xu', n2s(C.now + window)) end
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
  end
  bump(q, 'put', n_new)
  bump(q, 'by', total)
  return {'ok', ids, dups}
end

-- {'get', q, owner, max, lease_ms|false, waiter id|false, budget, peer|false}: with a
-- peer (RECEIVE over HTTP), each message is leased to a receipt of its own
ops.get = function(o)
  local q, owner, max, peer = o[2], o[3], o[4], o[8]
  settle(q)
  local lease_ms = o[5] or default_lease(q)
  local n, tk = allowance(q, max)
  if n > 0 then
    return {'ok', msgs_out(lease_some(q, owner, n, tk, lease_ms, o[7], peer)), C.now}
  end
  if not o[6] then return {'ok', {}, C.now} end
  add_waiter(q, o[6], owner, max, lease_ms, o[7], peer)
  return {'wait'}
end

-- {'ack', owner, ids, owners|nil}: a status per id (see lease_status); with owners,
-- id i is acked by owners[i] (receipts)
ops.ack = function(o)
  local out, owners = {}, o[4]
  local hist = C.d[4]
  load_all(o[3])
  for i, seq in ipairs(o[3]) do
    local owner = owners and owners[i] or o[2]
    local r = current(seq)
    local status = lease_status(seq, r, owner)
    out[i] = status
    if status == 0 then
      local q = r[F_Q]
      local sz = body_size(seq, r)
      forget(seq, r)
      zrem(qk(q, ':l'), seq)
      if not owners then srem(owned_key(owner), seq) end
      bump(q, 'nl', -1)
      bump(q, 'by', -sz)
      bump(q, 'acked', 1)
      if hist > 0 then ack_note(q, seq, r[F_ATT]) end -- a late ACK or INFO says "acked"
      if r[F_KEY] then chain_remove(q, seq, r[F_KEY]) end
    end
  end
  return {'ok', out}
end

-- the record of o's id ({name, owner, id, ...}) when o's owner holds its lease;
-- else nil and the lease status (see lease_status)
local function held(o)
  local r = current(o[3])
  local status = lease_status(o[3], r, o[2])
  if status ~= 0 then return nil, status end
  return r
end

-- {'nack', owner, id, delay_ms}
ops.nack = function(o)
  local r, status = held(o)
  if not r then return {'e', 'lease', status} end
  return {'ok', release(r[F_Q], o[3], r, 'nacked', o[4])}
end

-- {'unlease', owner, id}: a delivery that never reached its HTTP client: the message
-- is ready again, its attempt not counted
ops.unlease = function(o)
  local r, status = held(o)
  if not r then return {'e', 'lease', status} end
  r[F_ATT] = r[F_ATT] - 1
  release(r[F_Q], o[3], r, 'released_on_disconnect', 0)
  return {'ok'}
end

-- {'touch', owner, id, lease_ms}
ops.touch = function(o)
  local r, status = held(o)
  if not r then return {'e', 'lease', status} end
  r[F_DUE] = C.now + o[4]
  zadd(qk(r[F_Q], ':l'), r[F_DUE], o[3])
  save(o[3], r)
  return {'ok'}
end

local function view(seq, r, with_holder)
  local state = r[F_ST]
  if state == 'r' and is_dead(r[F_Q]) then state = 'dead' end
  local left = false
  if r[F_ST] ~= 'r' then left = math.max(0, r[F_DUE] - C.now) end
  local holder = false
  if with_holder and r[F_ST] == 'l' then
    holder = r[F_OWN]
    if is_receipt(holder) then holder = r[F_PEER] or false end
  end
  return {seq, r[F_Q], state, r[F_ATT], r[F_MAXATT], r[F_PRIO], C.now - r[F_PUT],
    body_ref(seq, r[F_BODY] or false), r[F_KEY] or false, r[F_HDR] or false, left, holder}
end

-- {'info', id}
ops.info = function(o)
  local seq = o[2]
  local r = current(seq)
  if r then return {'ok', view(seq, r)} end
  local done = acked(seq)
  if done then return {'acked', unpack(done)} end
  return {'e', 'not_found'}
end
