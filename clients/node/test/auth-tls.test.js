// Token authentication and TLS, when the broker has them (`--token`,
// `--tls-cert`/`--tls-key` in `wonderq serve --help`); skipped otherwise.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { Unauthorized, connect } from "../index.js";
import { WONDERQ_BIN, serveFlags, startBroker } from "./helpers.js";

const flags = serveFlags();
const T = { timeout: 30_000 };

function skipReason(/** @type {string[]} */ needed) {
  if (!flags) return `cannot run \`${WONDERQ_BIN} serve --help\``;
  const missing = needed.filter((flag) => !flags.has(flag));
  return missing.length ? `\`${WONDERQ_BIN} serve --help\` lists no ${missing.join(", ")} yet` : false;
}

describe("token auth", { skip: skipReason(["--token"]) }, () => {
  test("the right token connects; a wrong or missing one is Unauthorized", T, async () => {
    const broker = await startBroker(["--token", "s3cret-s3cret-s3cret"]);
    try {
      const client = await connect({ host: broker.host, port: broker.port, token: "s3cret-s3cret-s3cret" });
      await client.put("auth-q", "hello");
      await client.close();

      await assert.rejects(connect({ host: broker.host, port: broker.port, token: "wrong" }), Unauthorized);

      const anonymous = await connect({ host: broker.host, port: broker.port });
      try {
        await assert.rejects(anonymous.ping(), Unauthorized);
      } finally {
        await anonymous.close();
      }
    } finally {
      await broker.stop();
    }
  });
});

describe("TLS", { skip: skipReason(["--tls-cert", "--tls-key"]) }, () => {
  test("connects over TLS with the server's certificate as CA", T, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "wonderq-tls-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const made = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
      { encoding: "utf8", timeout: 20_000 },
    );
    if (made.status !== 0) {
      t.skip(`openssl could not make a test certificate: ${made.error ?? made.stderr}`);
      return;
    }
    const broker = await startBroker(["--tls-cert", cert, "--tls-key", key]);
    try {
      const ca = await readFile(cert);
      const client = await connect({ host: broker.host, port: broker.port, tls: { ca } });
      const id = await client.put("tls-q", { secure: true });
      const [message] = await client.get("tls-q");
      assert.equal(message.id, id);
      await message.ack();
      await client.close();

      await assert.rejects(connect({ host: broker.host, port: broker.port, tls: true }), /certificate/i);
    } finally {
      await broker.stop();
    }
  });
});
