/**
 * The options each call takes, one table per call, and the check that refuses any other.
 *
 * Owns: the option names of every public call (`connect`, `put`, `get`,
 * `runWorker`...), what each is called on the wire where it goes there
 * (`maxAttempts` -> `max_attempts`), and the `TypeError` that names an unknown
 * option (`{dealy: 5}`, `{max_attempts: 2}`) with the name it was probably
 * meant to be. Adding an option to a call is adding one entry to its table.
 *
 * Must never: check values (the server judges them, and its error names the
 * field), or let an unknown option pass: a typo must never be silently dropped.
 */

/**
 * A call's options: option name -> its wire field, or `null` for options that
 * stay in the client.
 * @typedef {Readonly<Record<string, string | null>>} OptionTable
 */

/** @param {Record<string, string | null>} table */
const table = (table) => Object.freeze(Object.assign(Object.create(null), table));

/** `put`, and each item of `putMany` (besides its `body`). */
export const PUT_OPTIONS = table({ key: "key", delay: "delay", priority: "priority", maxAttempts: "max_attempts" });
export const PUT_ITEM_FIELDS = table({ body: "body", ...PUT_OPTIONS });
export const GET_OPTIONS = table({ max: "max", lease: "lease", wait: "wait", signal: null });
export const NACK_OPTIONS = table({ delay: "delay" });
export const TOUCH_OPTIONS = table({ lease: "lease" });
export const CONNECT_OPTIONS = table({
  host: null,
  port: null,
  token: null,
  tls: null,
  connectTimeout: null,
  maxLineBytes: null,
  reconnect: null,
  reconnectTimeout: null,
});
export const CONSUME_OPTIONS = table({
  concurrency: null,
  lease: null,
  wait: null,
  extendLeases: null,
  signal: null,
  onError: null,
  reconnect: null,
});
export const WORKER_OPTIONS = table({
  concurrency: null,
  lease: null,
  wait: null,
  signal: null,
  backoff: null,
  onError: null,
  reconnect: null,
});

/**
 * Returns `options` (`{}` for `undefined`), or throws a `TypeError` naming the
 * first option `allowed` does not list.
 *
 * @template {object} T
 * @param {T | undefined} options
 * @param {OptionTable} allowed
 * @param {string} call what the options were given to, e.g. "put()"
 * @returns {T}
 */
export function checkOptions(options, allowed, call) {
  if (options === undefined) return /** @type {T} */ ({});
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`${call} takes an options object, not ${describe(options)}`);
  }
  for (const name of Object.keys(options)) {
    if (!(name in allowed)) throw new TypeError(unknownOption(name, allowed, call));
  }
  return options;
}

/**
 * The wire fields of checked options: each option with a wire name and a value
 * other than `undefined`, under its wire name.
 *
 * @param {Record<string, unknown>} options already checked against `allowed`
 * @param {OptionTable} allowed
 * @returns {Record<string, unknown>}
 */
export function wireFields(options, allowed) {
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const [name, value] of Object.entries(options)) {
    const field = allowed[name];
    if (field && value !== undefined) fields[field] = value;
  }
  return fields;
}

/**
 * @param {string} name
 * @param {OptionTable} allowed
 * @param {string} call
 */
function unknownOption(name, allowed, call) {
  const names = Object.keys(allowed);
  const guess = likelyMeant(name, names);
  const hint = guess ? ` (did you mean "${guess}"?)` : "";
  return `${call} has no option "${name}"${hint}; its options are ${names.join(", ")}`;
}

/**
 * The option a typo or a wire-style name most likely meant: the camelCase
 * form of a snake_case name (`max_attempts` -> `maxAttempts`), or the one
 * name within two edits.
 *
 * @param {string} name
 * @param {string[]} names
 * @returns {string | undefined}
 */
function likelyMeant(name, names) {
  const camel = name.replace(/_([a-z])/g, (_, letter) => letter.toUpperCase());
  const folded = names.find((known) => known.toLowerCase() === camel.toLowerCase());
  if (folded) return folded;
  const near = names.filter((known) => editDistance(name, known) <= 2);
  return near.length === 1 ? near[0] : undefined;
}

/**
 * Levenshtein distance, for short option names.
 * @param {string} a
 * @param {string} b
 */
function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

/** @param {unknown} value */
function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}
