// Real loopback servers and an ingress proxy over a fixed table, for the proxy's tests.
import http from "node:http";
import net from "node:net";
import {
  IngressProxy,
  type IngressProxyOptions,
  type ListenerStatus,
} from "../adapters/ingress-proxy.ts";
import type { IngressRoute, Listener, Upstream } from "../agent/ingress-routes.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { silentLogger } from "./cluster-room.ts";
import { waitFor } from "./wait.ts";

const closers: (() => Promise<void> | void)[] = [];

/** Has `close` run by closeAll, also when the test that opened it fails. */
export function closeLater(close: () => Promise<void> | void): void {
  closers.push(close);
}

/** Closes what the helpers opened, newest first (a test file's `after`). */
export async function closeAll(): Promise<void> {
  for (const close of closers.splice(0).reverse()) await close();
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP upstream that answers each connection's first line with its name, keeping the bytes. */
export async function tcpUpstream(name: string): Promise<{ port: number; received: Buffer[] }> {
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
export async function httpUpstream(name: string): Promise<number> {
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

export const upstream = (taskId: string, port: number): Upstream => ({
  taskId,
  node: taskId,
  address: "127.0.0.1",
  port,
  local: false,
});

export function proxy(
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

export async function listening(ingress: IngressProxy, port: number): Promise<void> {
  await waitFor("the port to listen", async () =>
    ingress.statuses().some((s) => s.port === port && s.listening),
  );
}

export function tcpAsk(port: number, text = "hello\n"): Promise<string> {
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
export function httpAsk(port: number, host: string): Promise<{ status: number; text: string }> {
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

export const tcpListener = (
  port: number,
  upstreams: Upstream[],
  proxyProtocol: "v2" | null = null,
) => ({
  port,
  protocol: "tcp" as const,
  routes: [{ service: "web", hosts: [], proxyProtocol, upstreams }],
});

export const route = (service: string, hosts: string[], upstreams: Upstream[]): IngressRoute => ({
  service,
  hosts,
  proxyProtocol: null,
  upstreams,
});

export const httpListener = (port: number, routes: IngressRoute[]): Listener => ({
  port,
  protocol: "http",
  routes,
});
