-- flush.lua: the end of a call's writes: the acked history, message order (ids),
-- and every write store.lua and ready.lua buffered, each key once.
-- Must never: write a body a reply still needs before reply_bodies() read it, or
-- keep a buffer past the call.


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
