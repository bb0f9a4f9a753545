// The message browser: a queue's messages by state, a page at a time, through PEEK
// (`GET /v1/queues/<q>/messages`), which never leases anything. In dead-letter mode each
// row can be retried (REDRIVE with its id) or deleted (REMOVE), alone or in a selection.

import { get, path, post, queuePath } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { el, fromTemplate, setText } from "./dom.js";
import * as fmt from "./format.js";

const PAGE_SIZE = 20;
const PEEK_MAX = 1000;
const CUT_CHARS = 600;
const CUT_LINES = 16;
const COLUMNS = ["id", "age", "attempts", "key", "headers", "time left", "holder", "body"];

function cut(text) {
  const lines = text.split("\n");
  if (text.length <= CUT_CHARS && lines.length <= CUT_LINES) return null;
  return `${lines.slice(0, CUT_LINES).join("\n").slice(0, CUT_CHARS)}…`;
}

/** A `<pre>` of a body, cut when large, with a button to see all of it and to cut it again. */
function bodyCell(body) {
  const full = fmt.pretty(body);
  const short = cut(full);
  const pre = el("pre", {}, short ?? full);
  if (short === null) return el("td", { class: "body" }, pre);
  const toggle = el("button", { type: "button", class: "link", "aria-expanded": "false" }, "Show all");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    pre.textContent = open ? short : full;
    toggle.setAttribute("aria-expanded", String(!open));
    toggle.textContent = open ? "Show all" : "Show less";
  });
  const size = el("span", { class: "size" }, ` ${fmt.bytes(new TextEncoder().encode(full).length)} `);
  return el("td", { class: "body" }, pre, size, toggle);
}

function timeLeft(m) {
  const left = m.lease_left ?? m.delay_left;
  return left === undefined ? "" : fmt.seconds(left);
}

export class MessageBrowser {
  /**
   * Messages of `queue` in `container`. `dead`: the dead letters of `queue` (in
   * `<queue>.dead`), with Retry and Delete unless `app.readOnly`; else a state per tab.
   */
  constructor(app, container, queue, { dead = false, counts = null } = {}) {
    this.app = app;
    this.queue = queue;
    this.dead = dead;
    this.actions = dead && !app.readOnly;
    this.state = dead ? "dead" : "ready";
    this.offset = 0;
    this.selected = new Set();
    const { fragment, slots } = fromTemplate("browser");
    this.slots = slots;
    this.counts = counts;
    this.tabs = new Map();
    if (!dead) this.makeTabs();
    slots.refresh.addEventListener("click", () => this.load());
    this.makeHead();
    this.previous = el("button", { type: "button", onclick: () => this.turn(-PAGE_SIZE) }, "Previous");
    this.next = el("button", { type: "button", onclick: () => this.turn(PAGE_SIZE) }, "Next");
    this.shown = el("span", { class: "shown" });
    slots.pager.append(this.previous, this.shown, this.next);
    if (this.actions) this.makeBulk();
    container.append(fragment);
  }

  makeTabs() {
    for (const state of ["ready", "delayed", "leased", "dead"]) {
      const tab = el("button", { type: "button", "aria-pressed": String(state === this.state) }, state);
      tab.addEventListener("click", () => {
        this.state = state;
        this.offset = 0;
        for (const [name, other] of this.tabs) other.setAttribute("aria-pressed", String(name === state));
        this.load();
      });
      this.tabs.set(state, tab);
      this.slots.states.append(tab);
    }
  }

  makeHead() {
    const head = this.slots.messages.tHead.rows[0];
    if (this.actions) {
      this.all = el("input", { type: "checkbox", "aria-label": "Select every message of this page" });
      this.all.addEventListener("change", () => this.selectAll(this.all.checked));
      head.append(el("td", {}, this.all));
    }
    for (const name of COLUMNS) head.append(el("th", { scope: "col", class: name === "attempts" ? "num" : null }, name));
    if (this.actions) head.append(el("th", { scope: "col" }, "actions"));
  }

  makeBulk() {
    this.count = el("span", { class: "shown" });
    this.retrySelected = el("button", { type: "button" }, "Retry selected");
    this.deleteSelected = el("button", { type: "button", class: "danger" }, "Delete selected");
    this.retrySelected.addEventListener("click", () => this.retry([...this.selected]));
    this.deleteSelected.addEventListener("click", () => this.remove([...this.selected]));
    this.slots.bulk.append(this.count, this.retrySelected, this.deleteSelected);
    this.slots.bulk.hidden = false;
    this.showSelection();
  }

  turn(by) {
    this.offset = Math.max(0, this.offset + by);
    this.load();
  }

  /** Read the page shown again (PEEK: nothing changes on the broker). */
  async load() {
    // dead letters: every message of <queue>.dead (there even when <queue> is gone)
    const where = path(queuePath(this.dead ? `${this.queue}.dead` : this.queue, "/messages"), {
      state: this.dead ? null : this.state,
      limit: Math.min(PAGE_SIZE, PEEK_MAX - this.offset),
      offset: this.offset,
    });
    try {
      const reply = await get(where);
      this.show(reply);
    } catch (error) {
      this.app.failed(error);
    }
  }

  show(reply) {
    const body = this.slots.messages.tBodies[0];
    const ids = new Set(reply.messages.map((m) => m.id));
    for (const id of this.selected) if (!ids.has(id)) this.selected.delete(id);
    body.replaceChildren(...reply.messages.map((m) => this.row(m)));
    this.slots.empty.hidden = reply.messages.length > 0;
    this.slots.messages.hidden = reply.messages.length === 0;
    const last = this.offset + reply.messages.length;
    this.previous.disabled = this.offset === 0;
    this.next.disabled = last >= Math.min(reply.total, PEEK_MAX) || reply.messages.length === 0;
    let text = reply.total === 0 ? "" : `${fmt.count(this.offset + 1)}–${fmt.count(last)} of ${fmt.count(reply.total)}`;
    if (last >= PEEK_MAX && reply.total > PEEK_MAX) text += " (the browser lists the first 1,000)";
    const expected = Math.min(PAGE_SIZE, reply.total - this.offset, PEEK_MAX - this.offset);
    if (reply.messages.length < expected) text += " (cut: a reply holds at most 1 MiB of bodies)";
    setText(this.shown, text);
    if (this.actions) this.showSelection();
  }

  row(m) {
    const cells = [
      el("th", { scope: "row", class: "id" }, el("code", {}, m.id)),
      el("td", { class: "num" }, fmt.seconds(m.age)),
      el("td", { class: "num" }, `${m.attempts ?? 0} of ${m.max_attempts ?? "?"}`),
      el("td", {}, m.key ?? ""),
      el("td", { class: "headers" }, el("pre", {}, fmt.headers(m.headers))),
      el("td", { class: "num" }, timeLeft(m)),
      el("td", {}, m.holder ?? ""),
      bodyCell(m.body),
    ];
    if (!this.actions) return el("tr", { "data-id": m.id }, ...cells);
    const box = el("input", { type: "checkbox", "aria-label": `Select ${m.id}` });
    box.checked = this.selected.has(m.id);
    box.addEventListener("change", () => {
      if (box.checked) this.selected.add(m.id);
      else this.selected.delete(m.id);
      this.showSelection();
    });
    const retry = el("button", { type: "button", onclick: () => this.retry([m.id]) }, "Retry");
    const remove = el("button", { type: "button", class: "danger", onclick: () => this.remove([m.id]) }, "Delete");
    const buttons = el("div", { class: "row-actions" }, retry, remove);
    return el("tr", { "data-id": m.id }, el("td", {}, box), ...cells, el("td", {}, buttons));
  }

  selectAll(on) {
    for (const box of this.slots.messages.tBodies[0].querySelectorAll("input[type=checkbox]")) {
      box.checked = on;
      const id = box.closest("tr").dataset.id;
      if (on) this.selected.add(id);
      else this.selected.delete(id);
    }
    this.showSelection();
  }

  showSelection() {
    const n = this.selected.size;
    setText(this.count, n === 0 ? "Nothing selected" : `${n} selected`);
    this.retrySelected.disabled = n === 0;
    this.deleteSelected.disabled = n === 0;
    const boxes = this.slots.messages.tBodies[0].querySelectorAll("input[type=checkbox]").length;
    this.all.checked = n > 0 && n === boxes;
  }

  static many(ids) {
    return ids.length === 1 ? `message ${ids[0]}` : `the ${ids.length} selected messages`;
  }

  async retry(ids) {
    if (ids.length === 0) return;
    const what = MessageBrowser.many(ids);
    const yes = await confirmAction("Retry", `Move ${what} back to ${this.queue}, with attempts reset to 0?`);
    if (!yes) return;
    await this.app.act(
      () => post(queuePath(this.queue, "/redrive"), { ids }),
      (r) => `Retried ${r.redriven} of ${ids.length}${notMoved(r)}.`,
    );
    this.selected.clear();
    await this.load();
  }

  async remove(ids) {
    if (ids.length === 0) return;
    const what = MessageBrowser.many(ids);
    const yes = await confirmAction("Delete", `Delete ${what} from ${this.queue}.dead? This cannot be undone.`);
    if (!yes) return;
    await this.app.act(
      () => post(queuePath(`${this.queue}.dead`, "/remove"), { ids }),
      (r) => `Deleted ${r.removed} of ${ids.length}${notMoved(r)}.`,
    );
    this.selected.clear();
    await this.load();
  }

  /** The tabs' counts from the queue's figures. */
  showCounts(q) {
    for (const [state, tab] of this.tabs) setText(tab, `${state} ${fmt.count(q[state])}`);
  }
}

function notMoved(reply) {
  const parts = [];
  if (reply.leased?.length) parts.push(`${reply.leased.length} leased by a consumer`);
  if (reply.not_found?.length) parts.push(`${reply.not_found.length} no longer there`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}
