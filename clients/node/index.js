/**
 * WonderQ client for Node.js: the public surface of the `wonderq` package.
 *
 * Owns: nothing but the list of what is public. See client.js (operations),
 * worker.js (consume, runWorker), errors.js (error classes).
 */

export { Client, connect } from "./client.js";
export { DEFAULT_HOST, DEFAULT_PORT } from "./connection.js";
export {
  BadJson,
  BadRequest,
  ConnectFailed,
  ConnectionLost,
  ERROR_CLASSES,
  LineTooLong,
  MemoryLimit,
  NotFound,
  NotLeased,
  ProtocolViolation,
  QueueFull,
  ShuttingDown,
  TooLarge,
  Unauthorized,
  Unavailable,
  UnknownOp,
  WonderQError,
  errorFromReply,
} from "./errors.js";
export { Message } from "./message.js";
export { Consumer, DEFAULT_LEASE_S, DEFAULT_WAIT_S, defaultBackoff } from "./worker.js";
