// Connections (`/connections`): every open connection with its leases, waiting GETs and
// requests, from STATS with `connections`.

import { get } from "./api.js";
import { el, fromTemplate, setText, syncRows } from "./dom.js";
import * as fmt from "./format.js";

export function connectionsPage() {
  const { fragment, slots } = fromTemplate("connections-page");

  async function refresh() {
    const stats = await get("/v1/stats?connections=true");
    const connections = stats.connections ?? [];
    syncRows(slots.connections.tBodies[0], connections, (c) => c.address, (c) => el(
      "tr",
      {},
      el("th", { scope: "row" }, c.address),
      el("td", { class: "num" }),
      el("td", { class: "num" }),
      el("td", { class: "num" }),
    ), (row, c) => {
      [c.leases, c.waiting, c.requests].forEach((n, i) => setText(row.cells[i + 1], fmt.count(n)));
    });
    slots.empty.hidden = connections.length > 0;
  }

  return { title: "Connections", node: fragment, refresh };
}
