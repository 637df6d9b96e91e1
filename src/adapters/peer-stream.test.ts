// Peer streams between real sockets on loopback: what is delivered, what is refused, and what an
// attacker on the path (a TCP proxy that changes, replays or injects bytes) achieves: nothing.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { afterEach, describe, it } from "node:test";
import { derivePeerKey, PeerVerifier, signPeerRequest } from "../api/peer-auth.ts";
import { limits } from "../core/limits.ts";
import { streamKeys } from "./peer-frames.ts";
import {
  acceptPeerStreams,
  PeerStream,
  type PeerStreamEndpoint,
  peerStreamPath,
  peerStreamProtocol,
} from "./peer-stream.ts";
import { systemClock } from "./system-clock.ts";

const key = derivePeerKey("shoal1.cluster.secret");

interface Served {
  base: string;
  /** Every frame payload the endpoint answered, with its verified sender. */
  received: { node: string; payload: string }[];
  /** Connections the server still holds, upgraded ones included. */
  connections(): Promise<number>;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A server accepting streams signed with `key`, answering each frame with `answer-<payload>`. */
async function serve(
  answer = (payload: string) => `answer-${payload}`,
  nodeId = "node-x",
): Promise<Served> {
  const received: Served["received"] = [];
  const verifier = new PeerVerifier(key);
  const endpoint: PeerStreamEndpoint = {
    nodeId,
    verify: (request, header, now) => verifier.verify(request, header, now),
    keys: (nonce, name) => streamKeys(key, nonce, name),
    async answer(node, payload) {
      received.push({ node, payload });
      return answer(payload);
    },
  };
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  const closeStreams = acceptPeerStreams(server, () => endpoint, systemClock);
  const port = await listen(server);
  const served = {
    base: `http://127.0.0.1:${port}`,
    received,
    connections: () =>
      new Promise<number>((resolve, reject) =>
        server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      ),
    close: async () => {
      closeStreams();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  cleanups.push(served.close);
  return served;
}

interface Opened {
  stream: PeerStream;
  answers: string[];
  errors: unknown[];
  refused: boolean;
}

function open(
  base: string,
  options: { nodeId?: string; peerId?: string; peerKey?: Buffer; silenceMs?: number } = {},
) {
  const opened: Opened = {
    stream: null as unknown as PeerStream,
    answers: [],
    errors: [],
    refused: false,
  };
  opened.stream = new PeerStream(base, {
    nodeId: options.nodeId ?? "node-a",
    peerId: options.peerId ?? "node-x",
    key: options.peerKey ?? key,
    clock: systemClock,
    onAnswer: (payload) => opened.answers.push(payload),
    onRefused: () => {
      opened.refused = true;
    },
    onError: (error) => opened.errors.push(error),
    silenceMs: options.silenceMs,
  });
  cleanups.push(() => opened.stream.close());
  return opened;
}

async function until(what: string, test: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The status an upgrade request with `headers` gets at `url`. */
function upgrade(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const request = http.request(url, {
      agent: false,
      headers: { ...headers, connection: "Upgrade", upgrade: peerStreamProtocol },
    });
    request.on("upgrade", (response, socket) => {
      socket.destroy();
      resolve(response.statusCode ?? 0);
    });
    request.on("response", (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("error", reject);
    request.end();
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy in front of `target`: `alter` sees every chunk, in each direction, and returns
 * what is passed on (changed, repeated or dropped bytes).
 */
async function proxy(
  target: string,
  alter: (direction: "up" | "down", chunk: Buffer) => Buffer,
): Promise<string> {
  const port = Number(new URL(target).port);
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    client.on("data", (chunk: Buffer) => upstream.write(alter("up", chunk)));
    upstream.on("data", (chunk: Buffer) => client.write(alter("down", chunk)));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  const local = await listen(server);
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${local}`;
}

/** The bytes after the upgrade's headers in one direction: the frames. */
function afterHeaders(chunk: Buffer, seen: { headers: boolean }): { head: Buffer; frames: Buffer } {
  if (seen.headers) return { head: Buffer.alloc(0), frames: chunk };
  const end = chunk.indexOf("\r\n\r\n");
  if (end < 0) return { head: chunk, frames: Buffer.alloc(0) };
  seen.headers = true;
  return { head: chunk.subarray(0, end + 4), frames: chunk.subarray(end + 4) };
}

describe("peer streams", () => {
  it("deliver frames from the verified sender and bring one answer back for each", async () => {
    const served = await serve();
    const client = open(served.base);
    for (const payload of ["one", "two", "three"]) assert.equal(client.stream.send(payload), true);
    await until("three answers", () => client.answers.length === 3);
    assert.deepEqual(
      served.received.map((r) => `${r.node}:${r.payload}`),
      ["node-a:one", "node-a:two", "node-a:three"],
    );
    assert.deepEqual(client.answers, ["answer-one", "answer-two", "answer-three"]);
    assert.equal(client.stream.closed, false);
  });

  it("are refused to a sender without the key, and to a replayed upgrade", async () => {
    const served = await serve();
    const stranger = open(served.base, { peerKey: derivePeerKey("another.cluster.token") });
    stranger.stream.send("hello");
    await until("the stranger's stream closed", () => stranger.stream.closed);
    assert.equal(stranger.refused, false, "a 401 is not an older shoal");
    assert.match(String(stranger.errors[0]), /401/);

    // The same signed upgrade request twice: the second is a replay.
    const path = `${peerStreamPath}?from=node-a&to=node-x`;
    const signed = signPeerRequest(key, "node-a", { method: "GET", path, body: "" }, Date.now());
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) statuses.push(await upgrade(`${served.base}${path}`, signed));
    assert.deepEqual(statuses, [101, 401]);
    assert.deepEqual(served.received, [], "no frame reached the member");
  });

  it("open only at the member they were signed for, and only under the signer's name", async () => {
    const x = await serve();
    const y = await serve(undefined, "node-y");
    // A stream to x, its upgrade captured and sent to y instead.
    const path = `${peerStreamPath}?from=node-a&to=node-x`;
    const signed = signPeerRequest(key, "node-a", { method: "GET", path, body: "" }, Date.now());
    assert.equal(await upgrade(`${y.base}${path}`, signed), 421);
    // The sender's name in the path is signed too.
    const renamed = `${peerStreamPath}?from=node-b&to=node-x`;
    assert.equal(await upgrade(`${x.base}${renamed}`, signed), 401);
    assert.equal(await upgrade(`${x.base}${path}`, signed), 101);
    assert.deepEqual([...x.received, ...y.received], []);
  });

  it("leave no refused upgrade open, whatever its path, even when the client keeps its end", async () => {
    const served = await serve();
    const port = Number(new URL(served.base).port);
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    cleanups.push(() => {
      socket.destroy();
    });
    const answered = new Promise<string>((resolve) => {
      socket.once("data", (chunk) => resolve(chunk.toString()));
    });
    socket.write(
      "GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n",
    );
    assert.match(await answered, /^HTTP\/1.1 404/);
    const deadline = Date.now() + 2000;
    while ((await served.connections()) > 0 && Date.now() < deadline) await pause(10);
    assert.equal(await served.connections(), 0);
  });

  it("end when a frame is changed on the way, before the member sees it", async () => {
    const served = await serve();
    const seen = { headers: false };
    const base = await proxy(served.base, (direction, chunk) => {
      if (direction === "down") return chunk;
      const { head, frames } = afterHeaders(chunk, seen);
      // The payload's first byte: a frame is a 4-byte length, the payload, then its MAC.
      if (frames.length > 4) frames[4] = (frames[4] ?? 0) ^ 0x01;
      return Buffer.concat([head, frames]);
    });
    const client = open(base);
    client.stream.send("transfer-leadership");
    await until("the stream closed", () => client.stream.closed);
    assert.deepEqual(served.received, []);
    assert.deepEqual(client.answers, []);
  });

  it("end when a frame is replayed or injected, after only the genuine one", async () => {
    const served = await serve();
    const seen = { headers: false };
    const base = await proxy(served.base, (direction, chunk) => {
      if (direction === "down") return chunk;
      const { head, frames } = afterHeaders(chunk, seen);
      return Buffer.concat([head, frames, frames]);
    });
    const client = open(base);
    client.stream.send("append-17");
    await until("the stream closed", () => client.stream.closed);
    assert.deepEqual(
      served.received.map((r) => r.payload),
      ["append-17"],
      "the copy was refused",
    );
  });

  it("drop an answer changed on the way back", async () => {
    const served = await serve();
    const seen = { headers: false };
    const base = await proxy(served.base, (direction, chunk) => {
      if (direction === "up") return chunk;
      const { head, frames } = afterHeaders(chunk, seen);
      if (frames.length > 4) frames[4] = (frames[4] ?? 0) ^ 0x01;
      return Buffer.concat([head, frames]);
    });
    const client = open(base);
    client.stream.send("vote-request");
    await until("the stream closed", () => client.stream.closed);
    assert.deepEqual(client.answers, [], "the forged answer was never handed on");
    assert.equal(served.received.length, 1);
  });

  it("tell an older shoal (no streams) from a refusal", async () => {
    const server = http.createServer((_request, response) => response.writeHead(404).end());
    const port = await listen(server);
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = open(`http://127.0.0.1:${port}`);
    client.stream.send("hello");
    await until("refused", () => client.refused);
    assert.equal(client.stream.closed, true);
  });

  it("stay open while quiet for longer than it took to connect", async () => {
    const served = await serve();
    const client = open(served.base);
    client.stream.send("first");
    await until("the first answer", () => client.answers.length === 1);
    await pause(limits.peerStreamConnectTimeoutMs + 300);
    assert.equal(client.stream.closed, false);
    client.stream.send("second");
    await until("the second answer", () => client.answers.length === 2);
    assert.deepEqual(client.errors, []);
  });

  it("close once sent frames go unanswered for too long", async () => {
    const served = await serve();
    let silent = false;
    const seen = { headers: false };
    const base = await proxy(served.base, (direction, chunk) => {
      if (direction === "up" || !silent) return chunk;
      const { head } = afterHeaders(chunk, seen);
      return head;
    });
    const client = open(base, { silenceMs: 100 });
    client.stream.send("first");
    await until("the first answer", () => client.answers.length === 1);
    seen.headers = true;
    silent = true;
    assert.equal(client.stream.send("second"), true);
    await pause(150);
    assert.equal(client.stream.send("third"), false, "the silent stream is closed");
    assert.equal(client.stream.closed, true);
  });
});
