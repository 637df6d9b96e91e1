// The benchmark's plain-HTTP wire: a member's requests and stream upgrades arrive named by the
// sender header (what the TLS-cost bench row needs), and that header can never name the peer of
// a TLS connection.
import assert from "node:assert/strict";
import http from "node:http";
import type net from "node:net";
import { after, describe, it } from "node:test";
import tls from "node:tls";
import { postJson } from "./http-post.ts";
import { PlainListener, PlainPeerWire } from "./plain-wire.ts";
import { markPeer, peerOf } from "./tls-listener.ts";

const identity = { certPem: "", keyPem: "", caPem: "" };

describe("plain wire (bench only)", () => {
  const seen: (string | null)[] = [];
  const server = http.createServer((request, response) => {
    seen.push(peerOf(request.socket as net.Socket)?.nodeId ?? null);
    response.writeHead(200).end("{}");
  });
  server.on("upgrade", (request, socket) => {
    seen.push(peerOf(request.socket as net.Socket)?.nodeId ?? null);
    socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
  });
  const listener = new PlainListener(server);
  const wire = new PlainPeerWire("node-a", identity);
  after(async () => {
    wire.closeAll();
    await listener.close();
  });

  it("names the sender of requests and upgrades from the header the wire sends", async () => {
    await listener.listen(0, "127.0.0.1");
    const { port } = server.address() as net.AddressInfo;
    const base = `http://127.0.0.1:${port}`;
    const answer = await postJson(
      `${base}/internal/raft`,
      wire.agentFor(),
      "{}",
      2000,
      wire.headers,
    );
    assert.equal(answer.status, 200);
    await new Promise<void>((resolve) => {
      const request = wire.request(`${base}/internal/raft-stream`, "node-x", {
        agent: false,
        headers: { connection: "Upgrade", upgrade: "shoal-raft/1" },
      });
      request.on("response", (response) => {
        response.resume();
        resolve();
      });
      request.on("error", () => resolve());
      request.end();
    });
    const anonymous = await fetch(`${base}/v1/health`, { method: "GET" });
    await anonymous.text();
    assert.deepEqual(seen, ["node-a", "node-a", null]);
  });

  it("refuses to name the peer of a TLS connection", () => {
    const socket = new tls.TLSSocket(undefined as unknown as net.Socket);
    assert.throws(() => markPeer(socket, { nodeId: "node-a", serial: "", keyDigest: "" }), /TLS/);
    socket.destroy();
  });
});
