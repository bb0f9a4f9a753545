/**
 * The wire format, with no IO: requests to bytes, bytes to replies.
 *
 * Owns: newline framing (a reply may arrive in any number of pieces, split
 * anywhere, even inside a multi-byte UTF-8 character), the cap on how many
 * bytes one unfinished reply may buffer, and checking that a line is a reply.
 *
 * Must never: touch a socket, a timer or the clock.
 */

import { ProtocolViolation } from "./errors.js";

/** Default cap on one reply line: far above any reply a default server sends. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

const NEWLINE = 0x0a;

/**
 * One request line, newline included. Fields whose value is `undefined` are
 * left out, so optional arguments can be passed straight through.
 *
 * @param {Record<string, unknown>} request
 * @returns {string}
 */
export function encodeRequest(request) {
  return `${JSON.stringify(request)}\n`;
}

/**
 * Splits a byte stream into lines. Feed it every chunk in order; it returns
 * the complete lines each chunk finished (blank lines dropped, a trailing
 * `\r` removed). Bytes are decoded only once a line is complete.
 */
export class LineDecoder {
  /** @type {Buffer[]} */
  #pending = [];
  #pendingBytes = 0;
  #maxLineBytes;

  /** @param {{maxLineBytes?: number}} [options] */
  constructor({ maxLineBytes = DEFAULT_MAX_LINE_BYTES } = {}) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes of the unfinished line held so far. */
  get bufferedBytes() {
    return this.#pendingBytes;
  }

  /**
   * @param {Uint8Array} chunk
   * @returns {string[]} the lines this chunk completed
   * @throws {ProtocolViolation} when an unfinished line grows past the cap
   */
  feed(chunk) {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    /** @type {string[]} */
    const lines = [];
    let start = 0;
    for (let end = data.indexOf(NEWLINE); end !== -1; end = data.indexOf(NEWLINE, start)) {
      this.#take(data.subarray(start, end));
      const line = this.#flush();
      if (line.trim() !== "") lines.push(line);
      start = end + 1;
    }
    if (start < data.length) this.#take(data.subarray(start));
    return lines;
  }

  /** @param {Buffer} piece */
  #take(piece) {
    if (piece.length === 0) return;
    this.#pendingBytes += piece.length;
    if (this.#pendingBytes > this.#maxLineBytes) {
      throw new ProtocolViolation(`reply line longer than ${this.#maxLineBytes} bytes`);
    }
    this.#pending.push(piece);
  }

  #flush() {
    const bytes =
      this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    const text = bytes.toString("utf8");
    return text.endsWith("\r") ? text.slice(0, -1) : text;
  }
}

/**
 * @typedef {{ok: boolean, rid?: string | number, error?: unknown, message?: unknown, [field: string]: unknown}} Reply
 */

/**
 * Parses one reply line.
 *
 * @param {string} line
 * @returns {Reply}
 * @throws {ProtocolViolation} if the line is not a JSON object with a boolean `ok`
 */
export function parseReply(line) {
  let value;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new ProtocolViolation(`reply is not JSON: ${truncate(line)}`, undefined, { cause: error });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || typeof value.ok !== "boolean") {
    throw new ProtocolViolation(`reply is not an object with a boolean "ok": ${truncate(line)}`);
  }
  return value;
}

/** @param {string} text */
function truncate(text) {
  return text.length > 120 ? `${text.slice(0, 120)}...` : text;
}
