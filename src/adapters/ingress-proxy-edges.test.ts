// The ingress proxy against a hostile or awkward client and task: smuggling, spoofed forwarding
// headers, requests that must not be sent twice, refused upgrades, half-closes, ports that close
// while they open, and a node that stops while clients hold connections.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, describe, it } from "node:test";
import {
  closeAll,
  closeLater,
  freePort,
  httpListener,
  listening,
  proxy,
  route,
  tcpListener,
  upstream,
} from "../testing/ingress-harness.ts";
import { waitFor } from "../testing/wait.ts";

after(closeAll);

/** An HTTP task that records each request it parses, and answers as `answer` says. */
async function recordingTask(
  answer: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = (
    _req,
    res,
  ) => res.end("ok"),
) {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] =
    [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      answer(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closeLater(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, seen };
}

/** A raw TCP server, closed with its connections by closeAll. */
async function rawServer(
  options: net.ServerOpts,
  onConnection: (socket: net.Socket) => void,
): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer(options, (socket) => {
    sockets.add(socket);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closeLater(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** Writes `raw` on a new connection to the proxy and returns all it answers until it closes. */
function rawExchange(port: number, raw: string, waitMs = 400): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(raw));
    let answer = "";
    socket.on("data", (data) => {
      answer += data;
    });
    const done = () => resolve(answer);
    socket.on("close", done);
    socket.on("error", done);
    setTimeout(() => socket.destroy(), waitMs);
  });
}

async function httpProxyTo(...ports: number[]) {
  const port = await freePort();
  const upstreams = ports.map((each, i) => upstream(`t${i}`, each));
  const { proxy: ingress } = proxy({
    listeners: [httpListener(port, [route("web", [], upstreams)])],
  });
  await listening(ingress, port);
  return { port, ingress };
}

describe("the ingress proxy against smuggling and spoofing", () => {
  it("passes a chunked GET body framed, so the task reads one request, not two", async () => {
    const task = await recordingTask();
    const { port } = await httpProxyTo(task.port);
    const inner = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    const chunk = `${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`;
    await rawExchange(
      port,
      `GET /public HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`,
    );
    assert.deepEqual(
      task.seen.map((r) => [r.method, r.url, r.body]),
      [["GET", "/public", inner]],
    );
  });

  it("keeps Content-Length and Host whatever Connection lists", async () => {
    const task = await recordingTask();
    const { port } = await httpProxyTo(task.port);
    const inner = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    const head = `DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, content-length, host\r\nContent-Length: ${inner.length}\r\n\r\n`;
    await rawExchange(port, head + inner);
    assert.deepEqual(
      task.seen.map((r) => [r.method, r.url, r.body, r.headers.host]),
      [["DELETE", "/x", inner, "a"]],
    );
  });

  it("sets X-Forwarded-* itself: what the client sent under those names is dropped", async () => {
    const task = await recordingTask();
    const { port } = await httpProxyTo(task.port);
    const spoof =
      "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6\r\n";
    await rawExchange(port, `GET / HTTP/1.1\r\nHost: web.home.arpa\r\n${spoof}\r\n`);
    const headers = task.seen[0]?.headers ?? {};
    assert.equal(headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(headers["x-forwarded-host"], "web.home.arpa");
    assert.equal(headers["x-forwarded-proto"], "http");
    assert.equal(headers.forwarded, undefined);
  });
});

describe("the ingress proxy's retries", () => {
  it("never sends a POST twice, even without a body, when its task drops it unanswered", async () => {
    const drop = (req: http.IncomingMessage) => req.socket.destroy();
    const first = await recordingTask(drop);
    const second = await recordingTask(drop);
    const { port } = await httpProxyTo(first.port, second.port);
    const answer = await rawExchange(
      port,
      "POST /charge HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1.1 502/);
    assert.equal(first.seen.length + second.seen.length, 1);
    // A GET that met the same fate goes to the next task instead.
    const get = await rawExchange(port, "GET /page HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.match(get, /^HTTP\/1.1 502/);
    assert.equal(first.seen.length + second.seen.length, 3, "the GET was tried on both tasks");
  });
});

describe("the ingress proxy's upgrades", () => {
  it("tunnels nothing when the task refuses the upgrade", async () => {
    const task = await recordingTask((_req, res) => res.end("no upgrade here"));
    const { port } = await httpProxyTo(task.port);
    const upgrade =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    const second = "GET /second HTTP/1.1\r\nHost: not-routed\r\n\r\n";
    const answer = await rawExchange(port, upgrade + second);
    assert.match(answer, /^HTTP\/1.1 200/);
    assert.match(answer, /no upgrade here/);
    assert.deepEqual(
      task.seen.map((r) => r.url),
      ["/ws"],
    );
  });

  it("tunnels both ways once the task answers 101", async () => {
    const tunnels = new Set<net.Socket>();
    const server = http.createServer();
    closeLater(() => {
      for (const socket of tunnels) socket.destroy();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    });
    server.on("upgrade", (_req, socket: net.Socket) => {
      tunnels.add(socket);
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
      );
      socket.on("data", (data) => socket.write(`echo:${data}`));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = await httpProxyTo((server.address() as net.AddressInfo).port);
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1" }, () =>
        socket.write("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"),
      );
      let got = "";
      socket.on("data", (data) => {
        got += data;
        if (got.includes("\r\n\r\n") && !got.includes("echo:")) socket.write("ping");
        if (got.includes("echo:ping")) {
          socket.destroy();
          resolve(got);
        }
      });
    });
    assert.match(answer, /^HTTP\/1.1 101/);
  });
});

describe("the ingress proxy's connections", () => {
  it("passes a task's half-close through: the client may still send", async () => {
    const got: Buffer[] = [];
    const taskPort = await rawServer({ allowHalfOpen: true }, (socket) => {
      socket.end("bye\n");
      socket.on("data", (data) => got.push(data));
    });
    const port = await freePort();
    const target = upstream("half", taskPort);
    const { proxy: ingress } = proxy({ listeners: [tcpListener(port, [target])] });
    await listening(ingress, port);
    await new Promise<void>((resolve) => {
      const client = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      client.on("end", () => client.end("x".repeat(1000), () => setTimeout(resolve, 100)));
      client.resume();
    });
    assert.equal(Buffer.concat(got).length, 1000);
  });

  it("lets go of a port closed while it still opens", async () => {
    const port = await freePort();
    const table = { listeners: [tcpListener(port, [])] };
    const { proxy: ingress } = proxy(table);
    table.listeners = [];
    ingress.sync();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const free = net.createServer();
    await new Promise<void>((resolve, reject) => {
      free.once("error", reject);
      free.listen(port, "127.0.0.1", resolve);
    });
    free.close();
  });

  it("refuses a client more connections than its share of the port, and serves the others", async () => {
    const taskPort = await rawServer({}, (socket) => socket.resume());
    const port = await freePort();
    const target = upstream("hold", taskPort);
    const { proxy: ingress } = proxy(
      { listeners: [tcpListener(port, [target])] },
      { connectionsPerClientMax: 2 },
    );
    await listening(ingress, port);
    const closedAt: (number | null)[] = [null, null, null];
    const sockets = [0, 1, 2].map((i) => {
      const socket = net.connect({ port, host: "127.0.0.1" });
      socket.on("error", () => undefined);
      socket.on("close", () => {
        closedAt[i] = performance.now();
      });
      closeLater(() => void socket.destroy());
      return socket;
    });
    await waitFor("the third connection to be refused", async () => closedAt[2] !== null, 2000);
    assert.deepEqual(closedAt.slice(0, 2), [null, null], "the first two stay open");
    assert.equal(sockets.length, 3);
  });

  it("stops in bounded time while a client holds a connection open", async () => {
    let reached = false;
    const taskPort = await rawServer({}, (socket) => {
      reached = true;
      socket.resume();
    });
    const port = await freePort();
    const target = upstream("hold", taskPort);
    const { proxy: ingress } = proxy(
      { listeners: [tcpListener(port, [target])] },
      { closeGraceMs: 200 },
    );
    await listening(ingress, port);
    const held = net.connect({ port, host: "127.0.0.1" });
    held.on("error", () => undefined);
    await new Promise((resolve) => held.once("connect", resolve));
    await waitFor("the connection to reach the task", async () => reached);
    let closed = false;
    void ingress.close().then(() => {
      closed = true;
    });
    await waitFor("the ingress to close", async () => closed, 2000).catch(() => undefined);
    assert.ok(closed, "close still waits for the client after 2 s");
  });
});
