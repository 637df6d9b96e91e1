// The TLS front of the API's port over real sockets: who it says a client is, what it refuses
// before any HTTP is read, and what a revocation does to connections already open.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import {
  createClusterCa,
  createNodeRequest,
  type KeyedCertificate,
  signNodeCertificate,
} from "./cluster-ca.ts";
import { peerOf, TlsListener } from "./tls-listener.ts";

const now = Date.now();

async function nodeCertificate(
  ca: KeyedCertificate,
  nodeId: string,
  nowMs = now,
  lifetimeMs?: number,
) {
  const { keyPem, csrPem } = await createNodeRequest(nodeId);
  const signed = await signNodeCertificate({
    ca,
    csrPem,
    nodeId,
    names: ["127.0.0.1"],
    nowMs,
    lifetimeMs,
  });
  assert.ok(signed.ok);
  return { certPem: signed.value, keyPem };
}

interface Answer {
  status: "answered" | "closed";
  who?: string | null;
}

function ask(port: number, options: tls.ConnectionOptions): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    let text = "";
    socket.on("secureConnect", () =>
      socket.write("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    );
    socket.on("data", (chunk) => {
      text += chunk;
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      const body = text.split("\r\n\r\n")[1];
      resolve(body ? { status: "answered", who: JSON.parse(body).who } : { status: "closed" });
    });
  });
}

/** Runs `start`, then waits for `socket` to close: no sooner than `minMs`, and within 5 s. */
async function endsBetween(socket: net.Socket, minMs: number, start: () => void): Promise<void> {
  const closed = new Promise((resolve) => socket.once("close", resolve));
  const started = performance.now();
  start();
  await closed;
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= minMs && elapsed < 5000, `closed after ${elapsed} ms`);
}

describe("TLS listener", () => {
  let ca: KeyedCertificate;
  let server: KeyedCertificate & { caPem: string };
  let listener: TlsListener;
  let port: number;
  const revoked = new Set<string>();
  const refusals: string[] = [];

  before(async () => {
    ca = await createClusterCa("abc", now);
    const own = await nodeCertificate(ca, "server1");
    server = { ...own, caPem: ca.certPem };
    const app = http.createServer((request, response) => {
      response.end(JSON.stringify({ who: peerOf(request.socket)?.nodeId ?? null }));
    });
    listener = new TlsListener(app, {
      identity: server,
      isRevoked: (peer) => revoked.has(peer.serial) || revoked.has(peer.nodeId),
      onRefused: (_address, refusal) =>
        refusals.push(`${refusal.reason}${refusal.clock ? " (clock)" : ""}`),
      connectionsPerClientMax: 4,
      handshakeTimeoutMs: 300,
      headersTimeoutMs: 400,
      requestTimeoutMs: 400,
    });
    await listener.listen(0, "127.0.0.1");
    port = (listener.server.address() as AddressInfo).port;
  });

  after(() => listener.close());

  /** A client without a certificate, its handshake done. */
  async function connected(): Promise<tls.TLSSocket> {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: [ca.certPem] });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    return socket;
  }

  it("names the node of a client certificate of its CA", async () => {
    const client = await nodeCertificate(ca, "node2");
    const answer = await ask(port, { ca: [ca.certPem], cert: client.certPem, key: client.keyPem });
    assert.deepEqual(answer, { status: "answered", who: "node2" });
  });

  it("answers a client without a certificate, naming no node", async () => {
    assert.deepEqual(await ask(port, { ca: [ca.certPem] }), { status: "answered", who: null });
  });

  it("names no node for a certificate of another CA, whatever node it claims", async () => {
    const other = await createClusterCa("abc", now);
    const forged = await nodeCertificate(other, "server1");
    const answer = await ask(port, { ca: [ca.certPem], cert: forged.certPem, key: forged.keyPem });
    assert.deepEqual(answer, { status: "answered", who: null });
  });

  it("says the clock is the cause when a certificate is not yet valid", async () => {
    const future = await nodeCertificate(ca, "node3", now + 24 * 3600_000);
    refusals.length = 0;
    const answer = await ask(port, { ca: [ca.certPem], cert: future.certPem, key: future.keyPem });
    assert.equal(answer.who, null);
    assert.deepEqual(refusals, ["CERT_NOT_YET_VALID (clock)"]);
  });

  it("closes a revoked certificate's connection before any HTTP, and its open ones at once", async () => {
    const client = await nodeCertificate(ca, "node4");
    const options = { ca: [ca.certPem], cert: client.certPem, key: client.keyPem };
    const open = tls.connect({ host: "127.0.0.1", port, ...options });
    await new Promise((resolve) => open.once("secureConnect", resolve));
    const closed = new Promise((resolve) => open.once("close", resolve));
    // The listener learns of the connection once the server side finished its handshake too.
    await new Promise((resolve) => setTimeout(resolve, 50));
    revoked.add("node4");
    listener.closeNode("node4");
    await closed;
    assert.deepEqual(await ask(port, options), { status: "closed" });
    revoked.delete("node4");
  });

  it("ends a handshake that does not finish in time", async () => {
    const socket = net.connect(port, "127.0.0.1");
    await endsBetween(socket, 250, () => {});
  });

  it("ends a connection whose first request's headers do not arrive in time", async () => {
    const socket = await connected();
    await endsBetween(socket, 300, () => socket.write("GET / HTTP/1.1\r\nhost: x\r\n"));
  });

  it("ends a connection whose request body does not arrive in time", async () => {
    const socket = await connected();
    socket.resume();
    await endsBetween(socket, 300, () =>
      socket.write("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"),
    );
  });

  it("ends a keep-alive connection whose next request does not come in time", async () => {
    const socket = await connected();
    const answered = new Promise((resolve) => socket.once("data", resolve));
    socket.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    await answered;
    socket.resume();
    await endsBetween(socket, 0, () => socket.write("GET / HTTP/1.1\r\nhost: x\r\n"));
  });

  it("keeps a connection whose request arrived in time", async () => {
    const socket = await connected();
    const answered = new Promise((resolve) => socket.once("data", resolve));
    socket.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    await answered;
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(socket.destroyed, false, "answered, it stays open for the next request a while");
    socket.destroy();
  });

  it("caps open connections per client address", async () => {
    const sockets = Array.from({ length: 6 }, () => net.connect(port, "127.0.0.1"));
    const closedEarly = await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 150);
            socket.once("close", () => {
              clearTimeout(timer);
              resolve(true);
            });
            socket.on("error", () => {});
          }),
      ),
    );
    assert.equal(closedEarly.filter(Boolean).length, 2);
    for (const socket of sockets) socket.destroy();
  });
});
