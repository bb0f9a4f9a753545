/**
 * The client's one error hierarchy.
 *
 * Owns: one class per wire error code of protocol.md section 5 (same names as
 * the broker's `broker/errors.py`), the errors the client raises itself
 * (`ConnectionLost`, `ConnectFailed`, `ProtocolViolation`), the function that
 * turns a failure reply into an error, and the one that says why a connection
 * could not be made.
 *
 * Must never: import anything else from this package (every module imports it).
 */

/** Base of every error this client raises for the broker. */
export class WonderQError extends Error {
  /**
   * @param {string} message the server's human sentence
   * @param {string} [code] the wire code; subclasses fix it
   * @param {ErrorOptions} [options]
   */
  constructor(message, code, options) {
    super(message, options);
    this.name = new.target.name;
    /** @type {string} */
    this.code = code ?? new.target.code ?? "unknown";
  }

  /** @type {string | undefined} The wire code of this class (undefined on the base). */
  static code = undefined;
}

/**
 * The connection closed or failed while calls were pending (or a call was made
 * on a closed client). The request may or may not have been applied.
 */
export class ConnectionLost extends WonderQError {
  static code = "connection_lost";
}

/**
 * No connection could be made: refused (no broker at that address), timed
 * out, the name did not resolve, or the TLS handshake failed. A
 * `ConnectionLost` too, so code that catches that catches this. `cause` is
 * the socket's own error (e.g. `code: "ECONNREFUSED"`).
 */
export class ConnectFailed extends ConnectionLost {
  static code = "connect_failed";
}

/**
 * The server sent something that is not a protocol reply (not JSON, not an
 * object, or a line over the client's limit). The client closes the connection
 * and pending calls fail with `ConnectionLost` whose `cause` is this error.
 */
export class ProtocolViolation extends WonderQError {
  static code = "protocol_violation";
}

export class BadJson extends WonderQError {
  static code = "bad_json";
}
export class BadRequest extends WonderQError {
  static code = "bad_request";
}
export class UnknownOp extends WonderQError {
  static code = "unknown_op";
}
export class NotFound extends WonderQError {
  static code = "not_found";
}
export class NotLeased extends WonderQError {
  static code = "not_leased";
}
export class QueueFull extends WonderQError {
  static code = "queue_full";
}
export class TooLarge extends WonderQError {
  static code = "too_large";
}
export class LineTooLong extends WonderQError {
  static code = "line_too_long";
}
export class MemoryLimit extends WonderQError {
  static code = "memory_limit";
}
export class Unauthorized extends WonderQError {
  static code = "unauthorized";
}
export class Unavailable extends WonderQError {
  static code = "unavailable";
}
export class ShuttingDown extends WonderQError {
  static code = "shutting_down";
}

/** Wire code -> error class, for every code protocol.md defines. */
export const ERROR_CLASSES = Object.freeze(
  Object.fromEntries(
    [
      BadJson,
      BadRequest,
      UnknownOp,
      NotFound,
      NotLeased,
      QueueFull,
      TooLarge,
      LineTooLong,
      MemoryLimit,
      Unauthorized,
      Unavailable,
      ShuttingDown,
    ].map((cls) => [cls.code, cls]),
  ),
);

/**
 * The error for a failure reply `{"ok":false,"error":CODE,"message":TEXT}`.
 * An unknown code gives a base `WonderQError` that keeps the code.
 *
 * @param {{error?: unknown, message?: unknown}} reply
 * @returns {WonderQError}
 */
export function errorFromReply(reply) {
  const code = typeof reply.error === "string" ? reply.error : "unknown";
  const message = typeof reply.message === "string" ? reply.message : code;
  const cls = Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code] : undefined;
  return cls ? new cls(message) : new WonderQError(message, code);
}

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "0.0.0.0", ""]);

/**
 * The `ConnectFailed` for an attempt to reach `host:port` that failed with
 * the socket error `cause`; a refused connection says that no broker runs
 * there and how to start one.
 *
 * @param {string} host
 * @param {number} port
 * @param {Error & {code?: string, errors?: Array<Error & {code?: string}>}} cause
 * @returns {ConnectFailed}
 */
export function connectFailed(host, port, cause) {
  const where = `${host}:${port}`;
  const codes = cause.errors?.length ? cause.errors.map((e) => e.code) : [cause.code];
  let why = cause.message;
  if (codes.every((code) => code === "ECONNREFUSED")) {
    const start = LOCAL_HOSTS.has(host)
      ? `\`wonderq serve --port ${port}\``
      : `\`wonderq serve --host ${host} --port ${port}\` on that machine`;
    why = `connection refused: no broker is running at that address (start one with ${start})`;
  } else if (codes.some((code) => code === "ENOTFOUND" || code === "EAI_AGAIN")) {
    why = `cannot resolve host "${host}" (${cause.message})`;
  }
  return new ConnectFailed(`cannot connect to ${where}: ${why}`, undefined, { cause });
}
