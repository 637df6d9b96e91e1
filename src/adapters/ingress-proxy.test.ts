import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, describe, it } from "node:test";
import { V2ProxyProtocol } from "proxy-protocol-js";
import type { IngressRoute, Listener, Upstream } from "../agent/ingress-routes.ts";
import { limits } from "../core/limits.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { silentLogger } from "../testing/cluster-room.ts";
import { waitFor } from "../testing/wait.ts";
import { IngressProxy, type IngressProxyOptions, type ListenerStatus } from "./ingress-proxy.ts";
import { dialTcp } from "./ingress-tcp.ts";

const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP upstream that answers each connection's first line with its name, keeping the bytes. */
async function tcpUpstream(name: string): Promise<{ port: number; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = net.createServer((socket) => {
    let got = Buffer.alloc(0);
    socket.on("data", (data) => {
      got = Buffer.concat([got, data]);
      if (got.at(-1) !== 0x0a) return;
      received.push(got);
      socket.end(`${name}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, received };
}

/** An HTTP upstream that answers with its name and the headers it got. */
async function httpUpstream(name: string): Promise<number> {
  const server = http.createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ name, headers: req.headers }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

const upstream = (taskId: string, port: number): Upstream => ({
  taskId,
  node: taskId,
  address: "127.0.0.1",
  port,
  local: false,
});

function proxy(
  table: { listeners: Listener[] },
  overrides: Partial<IngressProxyOptions> = {},
): { proxy: IngressProxy; changed: () => void; statuses: ListenerStatus[][] } {
  const random = new SeededRandom(7);
  let notify = () => {};
  const statuses: ListenerStatus[][] = [];
  const ingress = new IngressProxy({
    listeners: () => table.listeners,
    onChange: (listener) => {
      notify = listener;
      return () => {
        notify = () => {};
      };
    },
    monotonic: () => performance.now(),
    random: () => random.next(),
    logger: silentLogger,
    onStatus: (each) => statuses.push(each),
    host: "127.0.0.1",
    ...overrides,
  });
  closers.push(() => ingress.close());
  ingress.start();
  return { proxy: ingress, changed: () => notify(), statuses };
}

async function listening(ingress: IngressProxy, port: number): Promise<void> {
  await waitFor("the port to listen", async () =>
    ingress.statuses().some((s) => s.port === port && s.listening),
  );
}

function tcpAsk(port: number, text = "hello\n"): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(text));
    let answer = "";
    socket.on("data", (data) => {
      answer += data;
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
  });
}

/** One request with the given Host (fetch would put its own). */
function httpAsk(port: number, host: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: "127.0.0.1", port, path: "/", headers: { host } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    request.on("error", reject);
  });
}

const tcpListener = (port: number, upstreams: Upstream[], proxyProtocol: "v2" | null = null) => ({
  port,
  protocol: "tcp" as const,
  routes: [{ service: "web", hosts: [], proxyProtocol, upstreams }],
});

describe("the ingress proxy in TCP mode", () => {
  it("forwards a connection, and one to an upstream that refuses goes to another", async () => {
    const good = await tcpUpstream("good");
    const refused = await freePort();
    const port = await freePort();
    const table = { listeners: [tcpListener(port, [upstream("refuses", refused)])] };
    const { proxy: ingress, changed } = proxy(table);
    await listening(ingress, port);
    table.listeners = [
      tcpListener(port, [upstream("refuses", refused), upstream("good", good.port)]),
    ];
    changed();
    await new Promise((resolve) => setTimeout(resolve, limits.ingressRefreshMs * 3));
    for (let round = 0; round < 6; round++) assert.equal(await tcpAsk(port), "good\n");
  });

  it("gives up on an upstream that does not answer after the connect timeout", async () => {
    const good = await tcpUpstream("good");
    const port = await freePort();
    const silent = upstream("silent", 1);
    const table = { listeners: [tcpListener(port, [silent, upstream("good", good.port)])] };
    // The silent upstream's connect never completes, as with a host that vanished.
    const dial = (target: Upstream) =>
      target.taskId === "silent" ? new net.Socket() : dialTcp(target);
    const { proxy: ingress } = proxy(table, { dial });
    await listening(ingress, port);
    const started = performance.now();
    const answers = [];
    for (let round = 0; round < 8; round++) answers.push(await tcpAsk(port));
    assert.deepEqual(new Set(answers), new Set(["good\n"]));
    assert.equal(answers.length, 8);
    // At most one connection waited for the silent upstream: then it went last.
    assert.ok(performance.now() - started < limits.ingressConnectTimeoutMs * 2);
  });

  it("sends a PROXY v2 header with the client's address when the service asks", async () => {
    const seen = await tcpUpstream("proxied");
    const port = await freePort();
    const table = { listeners: [tcpListener(port, [upstream("p", seen.port)], "v2")] };
    const { proxy: ingress } = proxy(table);
    await listening(ingress, port);
    assert.equal(await tcpAsk(port, "payload\n"), "proxied\n");
    const first = seen.received[0] ?? Buffer.alloc(0);
    const header = V2ProxyProtocol.parse(new Uint8Array(first));
    const address = header.proxyAddress as unknown as {
      sourceAddress: { address: number[] };
      destinationPort: number;
    };
    assert.deepEqual(address.sourceAddress.address, [127, 0, 0, 1]);
    assert.equal(address.destinationPort, port);
    assert.equal(Buffer.from(header.data ?? new Uint8Array()).toString(), "payload\n");
  });

  it("says when another program holds the port, and listens once it is free", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as net.AddressInfo).port;
    const { proxy: ingress } = proxy(
      { listeners: [tcpListener(port, [])] },
      { listenRetryMs: 100 },
    );
    await waitFor(
      "the conflict to be seen",
      async () => ingress.statuses()[0]?.message === "another program holds the port",
    );
    assert.equal(ingress.statuses()[0]?.listening, false);
    await new Promise((resolve) => holder.close(resolve));
    await listening(ingress, port);
  });
});

const route = (service: string, hosts: string[], upstreams: Upstream[]): IngressRoute => ({
  service,
  hosts,
  proxyProtocol: null,
  upstreams,
});

const httpListener = (port: number, routes: IngressRoute[]): Listener => ({
  port,
  protocol: "http",
  routes,
});

describe("the ingress proxy in HTTP mode", () => {
  it("routes by Host, adds X-Forwarded-*, and retries a request that reached no upstream", async () => {
    const a = await httpUpstream("a");
    const b = await httpUpstream("b");
    const refused = await freePort();
    const port = await freePort();
    const listener = httpListener(port, [
      route("a", ["a.home.arpa"], [upstream("refuses", refused), upstream("a", a)]),
      route("b", [], [upstream("b", b)]),
      route("none", ["none.home.arpa"], []),
    ]);
    const { proxy: ingress } = proxy({ listeners: [listener] });
    await listening(ingress, port);
    for (let round = 0; round < 4; round++) {
      const answer = await httpAsk(port, "A.home.arpa");
      assert.equal(answer.status, 200);
      const body = JSON.parse(answer.text) as { name: string; headers: Record<string, string> };
      assert.equal(body.name, "a");
      assert.equal(body.headers["x-forwarded-for"], "127.0.0.1");
      assert.equal(body.headers["x-forwarded-proto"], "http");
      assert.equal(body.headers.host, "A.home.arpa");
    }
    assert.equal(JSON.parse((await httpAsk(port, "other.example")).text).name, "b");
    const none = await httpAsk(port, "none.home.arpa");
    assert.equal(none.status, 503);
    assert.match(none.text, /no healthy task of service none/);
  });

  it("answers 404 for a Host no service routes", async () => {
    const a = await httpUpstream("a");
    const port = await freePort();
    const listener = httpListener(port, [route("a", ["a.home.arpa"], [upstream("a", a)])]);
    const { proxy: ingress } = proxy({ listeners: [listener] });
    await listening(ingress, port);
    const answer = await httpAsk(port, "b.home.arpa");
    assert.equal(answer.status, 404);
  });

  it("sends no new request to a task that left the table", async () => {
    const a = await httpUpstream("a");
    const b = await httpUpstream("b");
    const port = await freePort();
    const web = (upstreams: Upstream[]) => httpListener(port, [route("web", [], upstreams)]);
    const table = { listeners: [web([upstream("a", a), upstream("b", b)])] };
    const { proxy: ingress, changed } = proxy(table);
    await listening(ingress, port);
    table.listeners = [web([upstream("b", b)])];
    changed();
    await new Promise((resolve) => setTimeout(resolve, limits.ingressRefreshMs * 3));
    for (let round = 0; round < 6; round++) {
      assert.equal(JSON.parse((await httpAsk(port, "x")).text).name, "b");
    }
  });
});
