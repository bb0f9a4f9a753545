// Samples of figures over the last 15 minutes, kept for the tab (sessionStorage), so a
// chart survives moving between pages and reloading; rates are differences of totals.

export const WINDOW_S = 15 * 60;
const MAX_SAMPLES = 1000;

export class History {
  /** The samples stored under `key` (one list per chart). */
  constructor(key) {
    this.key = `wonderq.history.${key}`;
    try {
      this.samples = JSON.parse(sessionStorage.getItem(this.key) ?? "[]");
    } catch {
      this.samples = [];
    }
  }

  /** Add `figures` taken at `t` (seconds); forget what is older than the window. */
  add(t, figures) {
    this.samples.push({ t, ...figures });
    const since = t - WINDOW_S;
    let first = 0;
    while (first < this.samples.length && this.samples[first].t < since) first += 1;
    this.samples = this.samples.slice(Math.max(first, this.samples.length - MAX_SAMPLES));
    try {
      sessionStorage.setItem(this.key, JSON.stringify(this.samples));
    } catch {
      // storage full: the chart still has the samples of this page
    }
  }

  /** `[t, value]` points of one figure. */
  series(name) {
    return this.samples.map((s) => [s.t, s[name] ?? null]);
  }

  /** `[t, per second]` points of a total (`put`, `acked`); a drop (a restart) is a gap. */
  rates(name) {
    const out = [];
    for (let i = 1; i < this.samples.length; i += 1) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      const dt = b.t - a.t;
      const dn = b[name] - a[name];
      out.push([b.t, dt > 0 && dn >= 0 ? dn / dt : null]);
    }
    return out;
  }

  /** The last rate of a total, or null before two samples. */
  lastRate(name) {
    const points = this.rates(name);
    return points.length ? points[points.length - 1][1] : null;
  }
}

/** Rates of each key's totals between two polls (a table's put/s and ack/s per queue). */
export class Rates {
  constructor() {
    this.last = new Map();
  }

  /** Per second for `key` since its last `measure`, for each of `names`; null the first time. */
  measure(key, t, totals, names) {
    const before = this.last.get(key);
    this.last.set(key, { t, totals });
    const out = {};
    for (const name of names) {
      if (before === undefined || t <= before.t) out[name] = null;
      else {
        const dn = totals[name] - before.totals[name];
        out[name] = dn >= 0 ? dn / (t - before.t) : null;
      }
    }
    return out;
  }
}
