// Peer streams between real sockets over mutual TLS on loopback: what is delivered, what is
// refused, and what an attacker on the path (a TCP proxy that changes, replays or injects bytes)
// or a machine with a certificate of another CA achieves: nothing.
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { afterEach, before, describe, it } from "node:test";
import tls from "node:tls";
import { limits } from "../core/limits.ts";
import { TestCa } from "../testing/test-ca.ts";
import {
  acceptPeerStreams,
  PeerStream,
  type PeerStreamEndpoint,
  peerStreamPath,
  peerStreamProtocol,
} from "./peer-stream.ts";
import { PeerTls } from "./peer-tls.ts";
import { type TlsIdentity, TlsListener } from "./tls-listener.ts";

let ca: TestCa;
let nodeA: TlsIdentity;
before(async () => {
  ca = await TestCa.create();
  nodeA = await ca.identity("node-a");
});

interface Served {
  base: string;
  /** Every frame payload the endpoint answered, with the sender its certificate named. */
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

/** A member `nodeId` behind a TLS listener, answering each frame with `answer-<payload>`. */
async function serve(
  answer = (payload: string) => `answer-${payload}`,
  nodeId = "node-x",
  streams = true,
): Promise<Served> {
  const received: Served["received"] = [];
  const endpoint: PeerStreamEndpoint = {
    accepts: () => true,
    async answer(node, payload) {
      received.push({ node, payload });
      return answer(payload);
    },
  };
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  const closeStreams = streams ? acceptPeerStreams(server, () => endpoint) : () => {};
  const listener = new TlsListener(server, {
    identity: await ca.identity(nodeId),
    isRevoked: () => false,
  });
  await listener.listen(0, "127.0.0.1");
  const port = (listener.server.address() as net.AddressInfo).port;
  const served = {
    base: `https://127.0.0.1:${port}`,
    received,
    connections: () =>
      new Promise<number>((resolve, reject) =>
        listener.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      ),
    close: async () => {
      closeStreams();
      await listener.close();
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
  options: { peerId?: string; identity?: TlsIdentity; silenceMs?: number } = {},
) {
  const opened: Opened = {
    stream: null as unknown as PeerStream,
    answers: [],
    errors: [],
    refused: false,
  };
  opened.stream = new PeerStream(base, {
    peerId: options.peerId ?? "node-x",
    wire: new PeerTls(options.identity ?? nodeA),
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

/** The status an upgrade request gets at `url` from a client with `tlsOptions`. */
function upgrade(url: string, tlsOptions: https.RequestOptions): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const request = https.request(url, {
      ...tlsOptions,
      agent: false,
      headers: { connection: "Upgrade", upgrade: peerStreamProtocol },
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
 * A TCP proxy in front of `target`: `alter` sees every chunk, in each direction, after the first
 * `skip` chunks of that direction (the TLS handshake and the upgrade), and returns what is passed
 * on (changed, repeated or dropped bytes).
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
  return `https://127.0.0.1:${local}`;
}

/** Passes the first `count` chunks of a direction unchanged, then applies `alter`. */
function after(count: number, alter: (chunk: Buffer) => Buffer) {
  let seen = 0;
  return (chunk: Buffer) => (seen++ < count ? chunk : alter(chunk));
}

/** Flips a byte in the middle of a TLS record: its AEAD tag no longer matches. */
function flip(chunk: Buffer): Buffer {
  const copy = Buffer.from(chunk);
  const at = Math.floor(copy.length / 2);
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}

const clientOf = (identity: TlsIdentity) => ({
  cert: identity.certPem,
  key: identity.keyPem,
  ca: [identity.caPem],
  checkServerIdentity: () => undefined,
});

describe("peer streams over mutual TLS", () => {
  it("deliver frames from the certificate's node and bring one answer back for each", async () => {
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

  it("are refused to a client without a certificate, and to one of another CA", async () => {
    const served = await serve();
    const url = `${served.base}${peerStreamPath}`;
    const anonymous = { ca: [ca.caPem], checkServerIdentity: () => undefined };
    assert.equal(await upgrade(url, anonymous), 401);
    const other = await TestCa.create();
    const stranger = await other.identity("node-a");
    // It trusts our CA (it could fetch it), but its own certificate is of another CA.
    assert.equal(await upgrade(url, { ...clientOf(stranger), ca: [ca.caPem] }), 401);
    const client = open(served.base, { identity: { ...stranger, caPem: ca.caPem } });
    client.stream.send("hello");
    await until("the stranger's stream closed", () => client.stream.closed);
    assert.equal(client.refused, false, "a 401 is not an older shoal");
    assert.deepEqual(served.received, [], "no frame reached the member");
  });

  it("open only at the member dialled: a server whose certificate names another is refused", async () => {
    const y = await serve(undefined, "node-y");
    // Dialled as node-x, answered by node-y (an address that moved, or someone in between).
    const client = open(y.base, { peerId: "node-x" });
    client.stream.send("append-1");
    await until("the stream closed", () => client.stream.closed);
    assert.match(String(client.errors[0]), /names node-y, not node-x/);
    assert.deepEqual(y.received, [], "nothing was sent to the wrong member");
    assert.deepEqual(client.answers, []);
  });

  it("leave no refused upgrade open, whatever its path, even when the client keeps its end", async () => {
    const served = await serve();
    const port = Number(new URL(served.base).port);
    const socket = tls.connect({
      port,
      host: "127.0.0.1",
      rejectUnauthorized: false,
    });
    cleanups.push(() => {
      socket.destroy();
    });
    await new Promise((resolve) => socket.once("secureConnect", resolve));
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

  it("end when bytes are changed on the way, before the member sees a frame", async () => {
    const served = await serve();
    const client = open(served.base);
    client.stream.send("warm-up");
    await until("the first answer", () => client.answers.length === 1);
    client.stream.close();
    // The same again through a proxy that changes every byte sent once the handshake is done.
    const up = after(2, flip);
    const base = await proxy(served.base, (direction, chunk) =>
      direction === "up" ? up(chunk) : chunk,
    );
    const attacked = open(base);
    attacked.stream.send("transfer-leadership");
    await until("the stream closed", () => attacked.stream.closed);
    assert.deepEqual(
      served.received.map((r) => r.payload),
      ["warm-up"],
    );
    assert.deepEqual(attacked.answers, []);
  });

  it("end when bytes are replayed, the copy never handed on", async () => {
    const served = await serve();
    const up = after(2, (chunk) => Buffer.concat([chunk, chunk]));
    const base = await proxy(served.base, (direction, chunk) =>
      direction === "up" ? up(chunk) : chunk,
    );
    const client = open(base);
    client.stream.send("append-17");
    await until("the stream closed", () => client.stream.closed);
    assert.ok(
      served.received.filter((r) => r.payload === "append-17").length <= 1,
      "the copy was refused",
    );
  });

  it("change nothing when a captured connection is replayed to the same member or another", async () => {
    const x = await serve();
    const y = await serve(undefined, "node-y");
    // Every byte node-a sends to x, as an attacker on the path records it.
    const recorded: Buffer[] = [];
    const base = await proxy(x.base, (direction, chunk) => {
      if (direction === "up") recorded.push(Buffer.from(chunk));
      return chunk;
    });
    const client = open(base);
    client.stream.send("append-17");
    await until("the answer", () => client.answers.length === 1);
    client.stream.close();
    for (const target of [x, y]) {
      const socket = net.connect(Number(new URL(target.base).port), "127.0.0.1");
      socket.on("error", () => {});
      const closed = new Promise((resolve) => socket.once("close", resolve));
      // Read what the member answers (its half of a new handshake), or its close never shows.
      socket.resume();
      socket.write(Buffer.concat(recorded));
      await closed;
    }
    assert.deepEqual(
      x.received.map((r) => r.payload),
      ["append-17"],
      "x took it once",
    );
    assert.deepEqual(y.received, [], "y took nothing");
  });

  it("drop an answer changed on the way back", async () => {
    const served = await serve();
    const down = after(2, flip);
    const base = await proxy(served.base, (direction, chunk) =>
      direction === "down" ? down(chunk) : chunk,
    );
    const client = open(base);
    client.stream.send("vote-request");
    await until("the stream closed", () => client.stream.closed);
    assert.deepEqual(client.answers, [], "the forged answer was never handed on");
  });

  it("tell an older shoal (no streams) from a refusal", async () => {
    const served = await serve(undefined, "node-x", false);
    const client = open(served.base);
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
    const base = await proxy(served.base, (direction, chunk) =>
      direction === "up" || !silent ? chunk : Buffer.alloc(0),
    );
    const client = open(base, { silenceMs: 100 });
    client.stream.send("first");
    await until("the first answer", () => client.answers.length === 1);
    silent = true;
    assert.equal(client.stream.send("second"), true);
    await pause(150);
    assert.equal(client.stream.send("third"), false, "the silent stream is closed");
    assert.equal(client.stream.closed, true);
  });
});
