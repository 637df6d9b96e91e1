// Calls to a member over real mutual TLS on loopback: an answer is taken only from the member
// asked, and only in its kind's shape.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { TestCa } from "../testing/test-ca.ts";
import { PeerClient } from "./peer-client.ts";
import { PeerTls } from "./peer-tls.ts";
import type { TlsListener } from "./tls-listener.ts";

describe("peer client", () => {
  let listener: TlsListener;
  let base: string;
  let client: PeerClient;
  let tls: PeerTls;
  const answers: Record<string, unknown> = {
    "/internal/read-index": { index: "everything" },
    "/internal/lease-read": { index: 41 },
    "/internal/propose": { ok: true, value: { name: "web" } },
  };

  before(async () => {
    const ca = await TestCa.create();
    const server = http.createServer((request, response) => {
      request.resume();
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify(answers[request.url ?? ""] ?? {}));
    });
    ({ base, listener } = await ca.serve(server, "node-x"));
    tls = new PeerTls(await ca.identity("node-a"));
    client = new PeerClient(tls);
  });

  after(async () => {
    tls.closeAll();
    await listener.close();
  });

  it("takes an answer of its kind's shape", async () => {
    assert.deepEqual(await client.call("node-x", base, "lease-read", {}), { index: 41 });
  });

  it("refuses an answer of the wrong shape for its kind", async () => {
    await assert.rejects(
      client.call("node-x", base, "read-index", {}),
      /answered read-index with a malformed answer/,
    );
    // A successful write must say where the leader's log was: without it, it is no answer.
    await assert.rejects(
      client.call("node-x", base, "propose", {}),
      /answered propose with a malformed answer/,
    );
  });

  it("refuses an answer from another member than the one asked", async () => {
    await assert.rejects(client.call("node-y", base, "lease-read", {}), /names node-x, not node-y/);
  });
});
