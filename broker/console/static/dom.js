// Small helpers to build and update the page without a framework.

/** An element: `el("a", {href: "/"}, "text", child...)`; `on*` attributes become listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** A copy of the `<template id=...>`'s content, and its `data-slot` elements by name. */
export function fromTemplate(id) {
  const fragment = document.getElementById(id).content.cloneNode(true);
  const slots = {};
  for (const node of fragment.querySelectorAll("[data-slot]")) slots[node.dataset.slot] = node;
  return { fragment, slots };
}

/** Set a node's text only when it changed (keeps the page quiet for screen readers). */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * Make `tbody` hold one row per item, in order, keyed by `key(item)`: a row that stays
 * is updated in place (focus and selection survive), new ones are made by `make`.
 */
export function syncRows(tbody, items, key, make, update) {
  const existing = new Map();
  for (const row of tbody.rows) existing.set(row.dataset.key, row);
  let previous = null;
  for (const item of items) {
    const k = key(item);
    let row = existing.get(k);
    if (row === undefined) {
      row = make(item);
      row.dataset.key = k;
    } else {
      existing.delete(k);
    }
    update(row, item);
    const wanted = previous === null ? tbody.firstChild : previous.nextSibling;
    if (wanted !== row) tbody.insertBefore(row, wanted);
    previous = row;
  }
  for (const row of existing.values()) row.remove();
}

/** The console's URL of a queue's page, and of its dead letters. */
export function queueUrl(name) {
  return `/queues/${encodeURIComponent(name)}`;
}

export function deadUrl(name) {
  return `/dead-letters/${encodeURIComponent(name)}`;
}
