-- receipts.lua: the HTTP API's receives, whose messages are leased to a receipt.
--
-- A receive leases to an owner of its own, '~<nonce>/<peer>' (is_receipt): no
-- node holds it, so neither a node's reaping nor a connection's close releases its
-- leases; its waiting form is still served on the caller's node. ACK, NACK and
-- TOUCH by receipt are the ordinary ops with the owner '~<nonce>' (held_by).
-- Must never: write before every id of an op is checked (unlease checks each
-- id on its own, as ack does: one status per id).

-- {'receive', q, owner, max, lease_ms|false, waiter id|false, budget}: get's result
-- and the lease it grants (ms), so the node can tell each receipt's lease_left
ops.receive = function(o)
  local res = ops.get(o)
  res[#res + 1] = o[5] or default_lease(o[2])
  return res
end

-- {'unlease', owner, ids}: give back leases whose delivery never reached the client,
-- ready again with the attempt not counted; a status per id (see lease_status)
ops.unlease = function(o)
  local owner, out = o[2], {}
  for i, seq in ipairs(o[3]) do
    local r = current(seq)
    local status = lease_status(seq, r, owner)
    out[i] = status
    if status == 0 then
      r[F_ATT] = r[F_ATT] - 1
      release(r[F_Q], seq, r, 'released_on_disconnect', 0)
    end
  end
  return {'ok', out}
end
