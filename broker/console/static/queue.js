// A queue's page (`/queues/<name>`): its figures live, its depth chart, its settings
// (read and changed), Pause/Resume, Purge, Redrive, Delete queue, and the message browser.

import { ApiError, call, get, post, queuePath } from "./api.js";
import { MessageBrowser } from "./browser.js";
import { LineChart } from "./chart.js";
import { confirmAction } from "./dialogs.js";
import { deadUrl, el, fromTemplate, setText } from "./dom.js";
import { DEPTH, NUMERIC_CELLS, queueCells } from "./figures.js";
import * as fmt from "./format.js";
import { History, Rates } from "./history.js";


// CONFIG's settings: name, label, what an empty field means, the input's bounds
const SETTINGS = [
  ["lease", "lease (seconds)", "the server's default", { min: "0.001", max: "43200", step: "any" }],
  ["max_attempts", "max attempts", "the server's default", { min: "1", max: "1000000", step: "1" }],
  ["max_length", "max length (messages)", "no limit", { min: "1", step: "1" }],
  ["rate", "rate limit (deliveries per second)", "no limit", { min: "0.001", step: "any" }],
  ["dedup_window", "dedup window (seconds)", "the server's default", { min: "0.001", max: "86400", step: "any" }],
];

class Settings {
  constructor(app, form, queue) {
    this.app = app;
    this.form = form;
    this.queue = queue;
    this.inputs = new Map();
    this.loaded = {};
    for (const [name, label, empty, bounds] of SETTINGS) {
      const id = `setting-${name}`;
      const input = el("input", { id, name, type: "number", inputmode: "decimal", readonly: app.readOnly, ...bounds });
      this.inputs.set(name, input);
      form.append(el("div", { class: "field" },
        el("label", { for: id }, label), input, el("span", { class: "hint" }, `empty: ${empty}`)));
    }
    this.problem = el("p", { class: "error", role: "alert" });
    form.append(this.problem);
    if (!app.readOnly) {
      form.append(el("div", { class: "buttons" }, el("button", { type: "submit" }, "Save")));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.save();
      });
    }
  }

  async load() {
    try {
      const reply = await get(queuePath(this.queue, "/settings"));
      this.show(reply.settings);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setText(this.problem, `The settings cannot be read: ${error.message}`);
    }
  }

  show(settings) {
    this.loaded = settings;
    setText(this.problem, "");
    for (const [name, input] of this.inputs) input.value = settings[name] ?? "";
  }

  /** The fields that changed: a number, or null (empty: back to the default, or no limit). */
  changes() {
    const out = {};
    for (const [name, input] of this.inputs) {
      const text = input.value.trim();
      const value = text === "" ? null : Number(text);
      if (value !== (this.loaded[name] ?? null)) out[name] = value;
    }
    return out;
  }

  async save() {
    const changes = this.changes();
    if (Object.keys(changes).length === 0) {
      this.app.say("No setting changed.");
      return;
    }
    await this.app.act(async () => {
      const reply = await call("PATCH", queuePath(this.queue, "/settings"), changes);
      this.show(reply.settings);
      return reply;
    }, () => `Saved ${Object.keys(changes).join(", ")} of ${this.queue}.`);
  }
}

class Actions {
  constructor(app, container, queue, afterwards) {
    this.app = app;
    this.queue = queue;
    this.afterwards = afterwards;
    this.figures = null;
    const button = (text, run, danger = false) =>
      el("button", { type: "button", class: danger ? "danger" : null, onclick: run }, text);
    this.pause = button("Pause", () => this.pauseOrResume("pause"));
    this.resume = button("Resume", () => this.pauseOrResume("resume"));
    this.purge = button("Purge", () => this.purgeAll(), true);
    this.redrive = button("Redrive", () => this.redriveAll());
    this.delete = button("Delete queue", () => this.deleteQueue(), true);
    container.append(this.pause, this.resume, this.purge, this.redrive, this.delete);
    // their confirmations name the queue's figures: usable once the first are shown
    this.purge.disabled = this.redrive.disabled = this.delete.disabled = true;
  }

  show(q) {
    this.figures = q;
    this.pause.hidden = q.paused;
    this.resume.hidden = !q.paused;
    this.purge.disabled = this.delete.disabled = false;
    this.redrive.disabled = q.dead === 0;
  }

  async pauseOrResume(which) {
    await this.app.act(
      () => post(queuePath(this.queue, `/${which}`)),
      () => `${this.queue} ${which === "pause" ? "is paused: it delivers nothing until resumed" : "delivers again"}.`,
    );
  }

  async purgeAll() {
    const n = this.figures.ready + this.figures.delayed;
    const text = `Delete the ${fmt.count(n)} ready and delayed messages of ${this.queue}? `
      + "Leased messages are not touched. This cannot be undone.";
    if (!(await confirmAction(`Purge ${this.queue}`, text))) return;
    await this.app.act(() => post(queuePath(this.queue, "/purge")), (r) => `Purged ${fmt.count(r.purged)} messages of ${this.queue}.`);
    await this.afterwards();
  }

  async redriveAll() {
    const n = this.figures.dead;
    const text = `Move the ${fmt.count(n)} dead letters of ${this.queue} back to the queue, with attempts reset to 0?`;
    if (!(await confirmAction(`Redrive ${this.queue}`, text))) return;
    await this.app.act(() => post(queuePath(this.queue, "/redrive")), (r) => `Redriven ${fmt.count(r.redriven)} dead letters to ${this.queue}.`);
    await this.afterwards();
  }

  async deleteQueue() {
    const q = this.figures;
    const n = q.ready + q.delayed + q.leased;
    const text = `Delete ${this.queue} with its ${fmt.count(n)} messages (leased ones too), its settings and its counters? `
      + `Its ${fmt.count(q.dead)} dead letters stay in ${this.queue}.dead. This cannot be undone.`;
    if (!(await confirmAction(`Delete ${this.queue}`, text))) return;
    await this.app.act(() => call("DELETE", queuePath(this.queue)), (r) => `Deleted ${this.queue} and ${fmt.count(r.deleted)} messages.`);
  }
}

export function queuePage(app, name) {
  const { fragment, slots } = fromTemplate("queue-page");
  setText(slots.title, name);
  const samples = new History(`queue:${name}`);
  const rates = new Rates();
  const chart = new LineChart(slots["depth-chart"], DEPTH);
  const row = slots.figures.tBodies[0].rows[0];
  queueCells({}, {}).forEach((_, i) => row.append(el("td", { class: NUMERIC_CELLS.includes(i) ? "num" : null })));
  const browser = new MessageBrowser(app, slots.browser, name);
  const deadLink = el("p", {}, el("a", { href: deadUrl(name) }, `Retry or delete the dead letters of ${name}`));
  slots.browser.append(deadLink);
  const actions = app.readOnly ? null : new Actions(app, slots.actions, name, () => browser.load());
  const settings = new Settings(app, slots.settings, name);
  let found = null;

  async function refresh() {
    let q;
    try {
      q = (await get(queuePath(name))).queue;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      showMissing(true);
      return;
    }
    if (found !== true) {
      showMissing(false);
      await Promise.all([settings.load(), browser.load()]);
    }
    const t = Date.now() / 1000;
    samples.add(t, { ready: q.ready, delayed: q.delayed, leased: q.leased, dead: q.dead });
    queueCells(q, rates.measure(name, t, q, ["put", "acked"])).forEach((text, i) => setText(row.cells[i], text));
    chart.draw(Object.fromEntries(DEPTH.map(({ name: s }) => [s, samples.series(s)])), t);
    browser.showCounts(q);
    actions?.show(q);
  }

  function showMissing(missing) {
    found = !missing;
    slots.missing.hidden = !missing;
    slots.body.hidden = missing;
    setText(slots.missing, missing ? `No queue named ${name} (now). This page shows it once it exists.` : "");
  }

  return { title: name, node: fragment, refresh };
}
