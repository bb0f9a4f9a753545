// How figures are shown: counts, rates, ages, sizes and message bodies.

const counts = new Intl.NumberFormat("en-US");

export function count(n) {
  return n === null || n === undefined ? "–" : counts.format(n);
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || Number.isNaN(perSecond)) return "–";
  if (perSecond === 0) return "0";
  if (perSecond < 10) return perSecond.toFixed(1);
  return counts.format(Math.round(perSecond));
}

export function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** A STATS server figure by its name: sizes in bytes, ages in seconds, the rest as is. */
export function figure(name, value) {
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value !== "number") return value === null ? "–" : String(value);
  if (name === "rss" || name.endsWith("bytes")) return bytes(value);
  if (name === "uptime" || name.endsWith("_age") || name.endsWith("_s")) return seconds(value);
  return Number.isInteger(value) ? count(value) : String(value);
}

/** A JSON value pretty-printed: strings as they are, short values on one line. */
export function pretty(value) {
  if (typeof value === "string") return value;
  const line = JSON.stringify(value, null, 1).replace(/\n\s*/g, " ");
  return line.length <= 60 ? line : JSON.stringify(value, null, 2);
}

/** `n` and the noun, plural unless `n` is 1 ("1 dead letter", "3 dead letters"). */
export function counted(n, noun) {
  return `${count(n)} ${noun}${n === 1 ? "" : "s"}`;
}

export function headers(map) {
  if (!map) return "";
  return Object.entries(map).map(([name, value]) => `${name}: ${value}`).join("\n");
}
