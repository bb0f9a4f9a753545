// Dead letters: the queues that have some (`/dead-letters`), and one queue's dead letters
// (`/dead-letters/<name>`) with Retry and Delete, one message or a selection at a time.

import { ApiError, get, queuePath } from "./api.js";
import { MessageBrowser } from "./browser.js";
import { deadUrl, el, fromTemplate, queueUrl, setText, syncRows } from "./dom.js";
import * as fmt from "./format.js";

export function deadLettersPage() {
  const { fragment, slots } = fromTemplate("dead-letters-page");

  async function refresh() {
    const listing = await get("/v1/queues?dead_queues=false&sort=dead&desc=true&limit=1000");
    const names = listing.order.filter((name) => listing.queues[name].dead > 0);
    syncRows(slots.queues.tBodies[0], names, (name) => name, (name) => el(
      "tr",
      {},
      el("th", { scope: "row" }, el("a", { href: deadUrl(name) }, name)),
      el("td", { class: "num" }),
      el("td", { class: "num" }),
      el("td", { class: "num" }),
    ), (row, name) => {
      const q = listing.queues[name];
      [q.dead, q.dead_lettered, q.redriven].forEach((n, i) => setText(row.cells[i + 1], fmt.count(n)));
    });
    slots.empty.hidden = names.length > 0;
    slots.queues.hidden = names.length === 0;
  }

  return { title: "Dead letters", node: fragment, refresh };
}

export function deadQueuePage(app, name) {
  const { fragment, slots } = fromTemplate("dead-queue-page");
  setText(slots.title, `Dead letters of ${name}`);
  const browser = new MessageBrowser(app, slots.browser, name, { dead: true });
  let loaded = false;

  async function refresh() {
    let dead = null;
    try {
      dead = (await get(queuePath(`${name}.dead`))).queue;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    const n = dead === null ? 0 : dead.ready + dead.delayed + dead.leased;
    const summary = [`${fmt.counted(n, "dead letter")} in ${name}.dead.`];
    if (dead?.leased) summary.push(`${fmt.count(dead.leased)} of them are leased by a consumer of ${name}.dead.`);
    slots.summary.replaceChildren(summary.join(" "), " ", el("a", { href: queueUrl(name) }, `Open ${name}`));
    if (!loaded) {
      loaded = true;
      await browser.load();
    }
  }

  return { title: `Dead letters of ${name}`, node: fragment, refresh };
}
