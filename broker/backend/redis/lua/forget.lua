-- forget.lua: idle queues are forgotten through Redis's key expiry (protocol.md 3, 8).
--
-- A queue is idle while it holds no message (ready, delayed or leased), no GET
-- waits on it, it is not paused and has no setting of its own. At the end of every
-- call, after its writes, each queue the call touched is looked at. An idle one has
-- its sorted sets deleted (they hold nothing but SKIP then) and its hash a time to
-- live of forget_after (C.d[7]), counted from now or from the end of its last dedup
-- id's window (hash field xu) if that is later, its dedup keys the same: so it goes
-- forget_after after the last request that left it idle, as if DELETEd, and a later
-- PUT makes it afresh (its name stays in the node registry until a node finds it
-- gone, stats.py). A queue that is not idle at the end of a call loses any time to
-- live it had. The hash field fg says one is set: a queue that stays busy pays
-- nothing. What outlives a forgotten queue: its acked history (:al and its ids in
-- the tag's :ack, so INFO of an id acked in it still says acked; at most
-- acked-history ids a name, and a DELETE of a queue of that name drops them) and
-- the tag's id counter.
-- Must never: leave a time to live on a queue that holds anything a client would
-- miss (a message, a lease, a waiting GET, a setting, a pause, a live dedup id),
-- or run before the call's writes reached Redis.

local function is_idle(q)
  local h = hq(q)
  return figure(q, 'nr') == 0 and figure(q, 'nd') == 0 and figure(q, 'nl') == 0
    and figure(q, 'nw') == 0 and not (h.paused or h.s_lease or h.s_matt or h.s_mlen
    or h.s_rate or h.s_dwin)
end

-- q is idle: forgotten forget_after from now (or from its last dedup id's end)
local function arm(q, k, h)
  local ttl = C.d[7]
  local xu = tonumber(h.xu)
  if xu and xu > C.now then ttl = ttl + xu - C.now end
  ttl = fmt('%d', math.ceil(ttl))
  call('DEL', k .. ':r', k .. ':a', k .. ':d', k .. ':l')
  if xu then
    if xu > C.now then
      call('PEXPIRE', k .. ':x', ttl)
      call('PEXPIRE', k .. ':X', ttl)
    else
      call('DEL', k .. ':x', k .. ':X') -- every id's window is over
      call('HDEL', k .. ':h', 'xu')
    end
  end
  if not h.fg then call('HSET', k .. ':h', 'fg', '1') end
  call('PEXPIRE', k .. ':h', ttl)
end

-- q holds something again: it stays
local function disarm(q, k, h)
  call('PERSIST', k .. ':h')
  call('HDEL', k .. ':h', 'fg')
  if h.xu then
    call('PERSIST', k .. ':x')
    call('PERSIST', k .. ':X')
  end
end

-- the end of a call: the queues it touched that are idle get their time to live,
-- those that are not lose theirs
local function forget_idle()
  for _, q in ipairs(C.touched_list) do
    local h = hq(q)
    if h.ex then
      if is_idle(q) then arm(q, qk(q), h)
      elseif h.fg then disarm(q, qk(q), h) end
    elseif h.nw and figure(q, 'nw') == 0 then
      call('DEL', qk(q, ':h')) -- a name no queue has, its last waiting GET gone
    end
  end
end
