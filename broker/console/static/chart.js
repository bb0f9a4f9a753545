// A small SVG line chart of the last 15 minutes: one line per series, a legend, the
// largest value on the axis, and a text summary for screen readers.

import { WINDOW_S } from "./history.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 150;
const PAD = { left: 44, right: 8, top: 8, bottom: 18 };

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

function niceMax(value) {
  if (value <= 1) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
  return 10 * step;
}

function label(value) {
  if (value >= 1e6) return `${value / 1e6}M`;
  if (value >= 1e3) return `${value / 1e3}k`;
  return String(value);
}

export class LineChart {
  /** A chart in `figure` (a `<figure>` with its caption) of `series`: [{name, label}]. */
  constructor(figure, series, { format = label } = {}) {
    this.series = series;
    this.format = format;
    this.svg = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart" });
    this.title = svg("title");
    this.svg.append(this.title);
    this.grid = svg("g", { class: "grid" });
    this.svg.append(this.grid);
    this.lines = new Map();
    for (const s of series) {
      const line = svg("polyline", { class: `line ${s.name}`, fill: "none" });
      this.lines.set(s.name, line);
      this.svg.append(line);
    }
    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const s of series) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = `swatch ${s.name}`;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, s.label);
      legend.append(item);
    }
    figure.prepend(this.svg);
    figure.append(legend);
  }

  /** Draw `points` (name -> [[t, value]...], value null for a gap), the window ending `now`. */
  draw(points, now) {
    const start = now - WINDOW_S;
    let top = 0;
    for (const s of this.series) {
      for (const [t, v] of points[s.name] ?? []) if (t >= start && v !== null) top = Math.max(top, v);
    }
    const max = niceMax(top);
    const x = (t) => PAD.left + ((t - start) / WINDOW_S) * (WIDTH - PAD.left - PAD.right);
    const y = (v) => HEIGHT - PAD.bottom - (v / max) * (HEIGHT - PAD.top - PAD.bottom);
    this.drawGrid(max, y);
    const latest = [];
    for (const s of this.series) {
      const shown = (points[s.name] ?? []).filter(([t, v]) => t >= start && v !== null);
      this.lines.get(s.name).setAttribute(
        "points",
        shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
      );
      const last = shown.length ? shown[shown.length - 1][1] : null;
      latest.push(`${s.label} ${last === null ? "none yet" : this.format(Math.round(last * 10) / 10)}`);
    }
    this.title.textContent = `Last 15 minutes; now: ${latest.join(", ")}`;
  }

  drawGrid(max, y) {
    this.grid.replaceChildren();
    for (const fraction of [0, 0.5, 1]) {
      const v = max * fraction;
      this.grid.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }));
      const text = svg("text", { x: PAD.left - 4, y: y(v) + 4, "text-anchor": "end" });
      text.textContent = this.format(v);
      this.grid.append(text);
    }
    const ticks = [[0, "-15m"], [5, "-10m"], [10, "-5m"], [15, "now"]];
    for (const [minute, text] of ticks) {
      const at = PAD.left + (minute / 15) * (WIDTH - PAD.left - PAD.right);
      const node = svg("text", {
        x: at,
        y: HEIGHT - 4,
        "text-anchor": minute === 0 ? "start" : minute === 15 ? "end" : "middle",
      });
      node.textContent = text;
      this.grid.append(node);
    }
  }
}
