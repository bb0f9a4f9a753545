// Figures shared by the pages: the server's figures as a description list, and the
// cells of one queue's row (the overview's table and a queue's own page).

import { el, setText } from "./dom.js";
import * as fmt from "./format.js";

const LABELS = {
  uptime: "uptime",
  connections: "connections",
  queues: "queues",
  messages: "messages",
  leased: "leased",
  bytes: "bodies held",
  rss: "memory",
  version: "version",
};

/** Show `entries` ([label, text]) in `dl`, updating the texts of the labels it has. */
export function describe(dl, entries) {
  const labels = entries.map(([label]) => label).join("\n");
  if (dl.dataset.labels !== labels) {
    dl.replaceChildren(...entries.map(([label]) => el("div", {}, el("dt", {}, label), el("dd"))));
    dl.dataset.labels = labels;
  }
  entries.forEach(([, text], i) => setText(dl.children[i].lastChild, text));
}

/** The server section of STATS: its figures first, then one list per nested section. */
export function serverFigures(container, server, extra) {
  const flat = [];
  const sections = [];
  for (const [name, value] of Object.entries(server)) {
    if (value !== null && typeof value === "object") sections.push([name, value]);
    else flat.push([LABELS[name] ?? name.replaceAll("_", " "), fmt.figure(name, value)]);
  }
  const lists = [[null, [...extra, ...flat]], ...sections.map(([name, values]) => [
    name,
    Object.entries(values).map(([k, v]) => [k.replaceAll("_", " "), fmt.figure(k, v)]),
  ])];
  const names = lists.map(([name]) => name ?? "").join("\n");
  if (container.dataset.sections !== names) {
    container.replaceChildren(...lists.map(([name]) => el(
      "div",
      { class: "section" },
      name === null ? null : el("h3", {}, name === "durability" ? "durable log" : name),
      el("dl"),
    )));
    container.dataset.sections = names;
  }
  lists.forEach(([, entries], i) => describe(container.children[i].querySelector("dl"), entries));
}

/** The texts of a queue's row after its name: ready ... rate limit (see the templates). */
export function queueCells(q, rates) {
  const rate = q.settings?.rate;
  return [
    fmt.count(q.ready),
    fmt.count(q.delayed),
    fmt.count(q.leased),
    fmt.count(q.dead),
    fmt.count(q.waiting_consumers),
    fmt.rate(rates.put),
    fmt.rate(rates.acked),
    fmt.seconds(q.oldest_ready_age),
    q.paused ? "paused" : "",
    rate === undefined || rate === null ? "–" : `${rate}/s`,
  ];
}

/** The lines of a depth chart (the overview's, a queue's). */
export const DEPTH = [
  { name: "ready", label: "ready" },
  { name: "delayed", label: "delayed" },
  { name: "leased", label: "leased" },
  { name: "dead", label: "dead" },
];

/** Which of `queueCells` are numbers (right-aligned). */
export const NUMERIC_CELLS = [0, 1, 2, 3, 4, 5, 6, 7, 9];
