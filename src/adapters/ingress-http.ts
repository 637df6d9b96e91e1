// HTTP mode of the ingress: a request goes to the route its Host names, over kept-alive upstream
// connections, with the X-Forwarded-* headers set by the ingress (it is the edge: what a client
// sent under those names is dropped). Bodies are framed again on the way out, and a Connection
// header never removes Host or Content-Length, so what the task reads as one request is what the
// client sent as one (no smuggling). A request that never reached an upstream (its connect failed
// or timed out) is tried on the next task; so is an idempotent one without a body whose upstream
// closed or vanished before answering. Anything else that loses its upstream is answered 502.
// Upgrades (WebSocket) are tunnelled once the task answers 101, never before.
import http from "node:http";
import type net from "node:net";
import type { IngressRoute, Upstream } from "../agent/ingress-routes.ts";
import { limits } from "../core/limits.ts";
import { connectWithin, type Dial, splice } from "./ingress-tcp.ts";

/** What a forwarded request needs of the proxy: upstream order, pools, counts, failures. */
export interface ForwardContext {
  order(route: IngressRoute): Upstream[];
  agentFor(upstream: Upstream): http.Agent;
  dial: Dial;
  begin(upstream: Upstream): void;
  end(upstream: Upstream): void;
  /** A connect to `upstream` failed: it goes last for a while, and its idle sockets close. */
  failed(upstream: Upstream): void;
  /** Whether a fresh connection to `upstream` opens in time (asked of a slow answer). */
  answers(upstream: Upstream): Promise<boolean>;
}

type Outcome = "done" | "unsent";

/** Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the message. */
const hopByHop = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];
/** What the ingress itself says of the client; a client's own values are not passed on. */
const forwarding = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];
/** Routing and framing: a header the client lists in Connection may not remove these. */
const kept = ["host", "content-length"];
/** Methods a request of which may be sent again (RFC 9110 9.2.2), when it has no body. */
const idempotent = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"];

export async function forwardRequest(
  context: ForwardContext,
  route: IngressRoute,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const order = context.order(route);
  if (order.length === 0) return refuse(res, 503, `no healthy task of service ${route.service}`);
  for (const upstream of order) {
    if ((await sendOnce(context, upstream, req, res)) === "done") return;
    if (res.destroyed) return;
  }
  refuse(res, 502, `no task of service ${route.service} answered`);
}

export function refuse(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
  res.end(`shoal ingress: ${message}\n`);
}

function sendOnce(
  context: ForwardContext,
  upstream: Upstream,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let connected = false;
    let answered = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      res.off("close", onClientGone);
      context.end(upstream);
      resolve(outcome);
    };
    context.begin(upstream);
    const out = http.request({
      host: upstream.address,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: forwardedHeaders(req),
      agent: context.agentFor(upstream),
      setHost: false,
    });
    const sent = () => {
      connected = true;
      timers.push(setTimeout(() => void probe(), limits.ingressAnswerProbeMs));
      // A request tried again has no body left to pipe (only body-less ones are).
      if (req.readableEnded) out.end();
      else req.pipe(out);
    };
    // A slow answer may be a dead host (a kept-alive socket to it sends into the void): a fresh
    // connect tells, and a host that does not answer is marked failed, which ends this request.
    const probe = async () => {
      if (answered || settled) return;
      if (!(await context.answers(upstream))) {
        context.failed(upstream);
        out.destroy(new Error("the upstream does not answer"));
      }
    };
    out.on("socket", (socket: net.Socket) => {
      if (!socket.connecting) return sent();
      // The deadline runs from the connect, not from the request: none waits for a pooled socket.
      timers.push(
        setTimeout(() => {
          if (!connected) out.destroy(new Error("connect timed out"));
        }, limits.ingressConnectTimeoutMs),
      );
      socket.once("connect", sent);
    });
    out.on("response", (answer) => {
      answered = true;
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders(answer));
      answer.pipe(res);
      answer.once("end", () => settle("done"));
      answer.once("error", () => {
        res.destroy();
        settle("done");
      });
    });
    out.on("error", () => {
      if (!connected) {
        context.failed(upstream);
        return settle("unsent");
      }
      // Closed or gone before any answer: an idempotent request without a body may go to the
      // next task (a kept-alive socket the task had closed, a server not yet listening).
      if (!answered && mayResend(req)) return settle("unsent");
      if (!answered) refuse(res, 502, `task ${upstream.taskId} closed the connection`);
      else res.destroy();
      settle("done");
    });
    const onClientGone = () => {
      if (!res.writableFinished) out.destroy();
      settle("done");
    };
    res.once("close", onClientGone);
  });
}

/** An idempotent request with no body: sending it again changes nothing it did not change. */
function mayResend(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  const bodiless =
    req.headers["transfer-encoding"] === undefined && (length === undefined || length === "0");
  return bodiless && idempotent.includes(req.method ?? "");
}

/**
 * The request's headers for the upstream: hop-by-hop ones out (the upgrade's own with
 * `keepUpgrade`), the client's forwarding headers replaced by the ingress's, and a body that came
 * chunked sent chunked again (Node decoded it).
 */
export function forwardedHeaders(
  req: http.IncomingMessage,
  keepUpgrade = false,
): http.OutgoingHttpHeaders {
  const source = req.headers;
  const headers: http.OutgoingHttpHeaders = {};
  const listed = String(source.connection ?? "")
    .toLowerCase()
    .split(",")
    .map((name) => name.trim())
    .filter((name) => !kept.includes(name));
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || forwarding.includes(name)) continue;
    const upgrade = keepUpgrade && (name === "connection" || name === "upgrade");
    if (!upgrade && (hopByHop.includes(name) || listed.includes(name))) continue;
    headers[name] = value;
  }
  if (source["transfer-encoding"] !== undefined) headers["transfer-encoding"] = "chunked";
  headers["x-forwarded-for"] = clientAddress(req.socket);
  headers["x-forwarded-proto"] = "http";
  if (source.host !== undefined) headers["x-forwarded-host"] = source.host;
  return headers;
}

function responseHeaders(answer: http.IncomingMessage): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined && !hopByHop.includes(name)) headers[name] = value;
  }
  return headers;
}

function clientAddress(socket: net.Socket): string {
  const address = socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/**
 * An upgrade (WebSocket): sent to the first upstream that connects; tunnelled once it answers
 * 101, while any other answer is passed back and the connection closed, so nothing else ever
 * reaches the task unrouted.
 */
export async function forwardUpgrade(
  context: ForwardContext,
  route: IngressRoute,
  req: http.IncomingMessage,
  client: net.Socket,
  head: Buffer,
): Promise<void> {
  client.on("error", () => undefined);
  const reached = await connectFirst(context, route, client);
  if (!reached) {
    if (!client.destroyed) client.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n");
    return;
  }
  const { upstream, socket } = reached;
  context.begin(upstream);
  client.once("close", () => context.end(upstream));
  const out = http.request({
    method: req.method,
    path: req.url,
    headers: forwardedHeaders(req, true),
    createConnection: () => socket,
    setHost: false,
  });
  out.on("upgrade", (answer, tunnel: net.Socket, upstreamHead: Buffer) => {
    client.write(rawHead(answer, []));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (head.length > 0) tunnel.write(head);
    splice(client, tunnel, () => undefined);
  });
  out.on("response", (answer) => {
    client.write(rawHead(answer, ["content-length", "transfer-encoding", "connection"]));
    client.write("connection: close\r\n\r\n");
    answer.on("data", (chunk: Buffer) => client.write(chunk));
    answer.once("end", () => client.end());
    answer.once("error", () => client.destroy());
  });
  out.on("error", () => client.destroy());
  client.once("close", () => out.destroy());
  out.end();
}

/**
 * The status line and headers of an answer, as bytes to write on a raw socket; without `drop`,
 * ended by the blank line, else left open for a last header.
 */
function rawHead(answer: http.IncomingMessage, drop: string[]): string {
  const lines = [`HTTP/1.1 ${answer.statusCode} ${answer.statusMessage ?? ""}`];
  const raw = answer.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? "";
    if (!drop.includes(name.toLowerCase())) lines.push(`${name}: ${raw[i + 1]}`);
  }
  return `${lines.join("\r\n")}\r\n${drop.length === 0 ? "\r\n" : ""}`;
}

/**
 * The first upstream of the route that connects in time, in attempt order; null when none did or
 * the client left meanwhile. Each that did not goes last for a while.
 */
export async function connectFirst(
  context: ForwardContext,
  route: IngressRoute,
  client: net.Socket,
): Promise<{ upstream: Upstream; socket: net.Socket } | null> {
  for (const upstream of context.order(route)) {
    const socket = await connectWithin(context.dial, upstream, limits.ingressConnectTimeoutMs);
    if (client.destroyed) {
      socket?.destroy();
      return null;
    }
    if (socket) return { upstream, socket };
    context.failed(upstream);
  }
  return null;
}
