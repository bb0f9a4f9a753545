// The overview (`/`): the server's figures, 15 minutes of depth and throughput, and the
// queue table (sorted, filtered and paged by the API: any number of queues).

import { get, path } from "./api.js";
import { LineChart } from "./chart.js";
import { el, fromTemplate, queueUrl, setText, syncRows } from "./dom.js";
import { DEPTH, NUMERIC_CELLS, queueCells, serverFigures } from "./figures.js";
import * as fmt from "./format.js";
import { History, Rates } from "./history.js";

const THROUGHPUT = [
  { name: "put", label: "put/s" },
  { name: "acked", label: "ack/s" },
];
const SIZES = [25, 50, 100, 250];

function stateFromUrl() {
  const params = new URLSearchParams(location.search);
  const size = Number(params.get("size"));
  return {
    filter: params.get("filter") ?? "",
    sort: params.get("sort") ?? "name",
    desc: params.get("desc") === "1",
    page: Math.max(1, Number(params.get("page")) || 1),
    size: SIZES.includes(size) ? size : 50,
  };
}

function saveToUrl(state) {
  const url = path("/", {
    filter: state.filter,
    sort: state.sort === "name" ? null : state.sort,
    desc: state.desc ? 1 : null,
    page: state.page > 1 ? state.page : null,
    size: state.size === 50 ? null : state.size,
  });
  history.replaceState(null, "", url);
}

class QueueTable {
  constructor(slots, state, refresh) {
    this.table = slots.queues;
    this.pager = slots.pager;
    this.state = state;
    this.refresh = refresh;
    this.rates = new Rates();
    this.headers = [...this.table.tHead.rows[0].cells];
    for (const th of this.headers.filter((cell) => cell.dataset.sort)) {
      const arrow = el("span", { class: "arrow", "aria-hidden": "true" });
      const button = el("button", { type: "button", class: "sort" }, th.textContent, arrow);
      button.addEventListener("click", () => this.sortBy(th.dataset.sort));
      th.replaceChildren(button);
    }
    this.previous = el("button", { type: "button", onclick: () => this.turn(-1) }, "Previous");
    this.next = el("button", { type: "button", onclick: () => this.turn(1) }, "Next");
    this.shown = el("span", { class: "shown" });
    this.pager.append(this.previous, this.shown, this.next);
    this.markSort();
  }

  sortBy(column) {
    const s = this.state;
    if (s.sort === column) s.desc = !s.desc;
    else Object.assign(s, { sort: column, desc: column !== "name" });
    s.page = 1;
    this.markSort();
    this.refresh();
  }

  turn(by) {
    this.state.page += by;
    this.refresh();
  }

  markSort() {
    for (const th of this.headers) {
      const sorted = th.dataset.sort === this.state.sort;
      if (sorted) th.setAttribute("aria-sort", this.state.desc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
      const arrow = th.querySelector(".arrow");
      if (arrow !== null) arrow.textContent = sorted ? (this.state.desc ? " ▼" : " ▲") : "";
    }
  }

  show(listing, t) {
    const items = listing.order.map((name) => [name, listing.queues[name]]);
    syncRows(this.table.tBodies[0], items, ([name]) => name, ([name]) => {
      const cells = queueCells(listing.queues[name], {}).map((_, i) => el("td", { class: NUMERIC_CELLS.includes(i) ? "num" : null }));
      return el("tr", {}, el("th", { scope: "row" }, el("a", { href: queueUrl(name) }, name)), ...cells);
    }, (row, [name, q]) => {
      const rates = this.rates.measure(name, t, q, ["put", "acked"]);
      queueCells(q, rates).forEach((text, i) => setText(row.cells[i + 1], text));
      row.classList.toggle("paused", q.paused);
    });
    this.showPager(listing.count, items.length);
  }

  showPager(count, shown) {
    const { page, size } = this.state;
    const first = (page - 1) * size;
    this.previous.disabled = page <= 1;
    this.next.disabled = first + size >= count;
    const what = this.state.filter ? `queues matching “${this.state.filter}”` : "queues";
    setText(this.shown, count === 0
      ? `No ${what}.`
      : `${fmt.count(first + 1)}–${fmt.count(first + shown)} of ${fmt.count(count)} ${what}`);
  }
}

export function overviewPage(app) {
  const { fragment, slots } = fromTemplate("overview-page");
  const state = stateFromUrl();
  const samples = new History("overview");
  const depth = new LineChart(slots["depth-chart"], DEPTH);
  const throughput = new LineChart(slots["rate-chart"], THROUGHPUT, { format: fmt.rate });
  const table = new QueueTable(slots, state, () => app.tick());
  slots.filter.value = state.filter;
  slots.size.value = String(state.size);
  let typing = null;
  slots.filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      Object.assign(state, { filter: slots.filter.value.trim(), page: 1 });
      app.tick();
    }, 200);
  });
  slots.size.addEventListener("change", () => {
    Object.assign(state, { size: Number(slots.size.value), page: 1 });
    app.tick();
  });

  async function refresh() {
    saveToUrl(state);
    const listing = await get(path("/v1/queues", {
      dead_queues: "false",
      contains: state.filter,
      sort: state.sort,
      desc: state.desc ? "true" : null,
      offset: (state.page - 1) * state.size,
      limit: state.size,
    }));
    if (listing.count > 0 && (state.page - 1) * state.size >= listing.count) {
      state.page = Math.ceil(listing.count / state.size); // the page shown is past the end now
      return refresh();
    }
    const everything = state.filter ? await get("/v1/queues?dead_queues=false&limit=1") : listing;
    const t = Date.now() / 1000;
    const { ready, delayed, leased, dead, put, acked } = everything.totals;
    samples.add(t, { ready, delayed, leased, dead, put, acked });
    serverFigures(slots.server, everything.server, [
      ["put/s", fmt.rate(samples.lastRate("put"))],
      ["ack/s", fmt.rate(samples.lastRate("acked"))],
    ]);
    depth.draw(Object.fromEntries(DEPTH.map(({ name }) => [name, samples.series(name)])), t);
    throughput.draw({ put: samples.rates("put"), acked: samples.rates("acked") }, t);
    table.show(listing, t);
  }

  return { title: "Overview", node: fragment, refresh };
}
