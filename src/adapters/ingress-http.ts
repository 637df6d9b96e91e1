// HTTP mode of the ingress: a request goes to the route its Host names, with X-Forwarded-For and
// X-Forwarded-Proto added, over kept-alive upstream connections. A request that never reached an
// upstream (its connect failed or timed out), or a body-less one whose connection closed before
// any answer, is tried on the next; one that did is answered 502 if its upstream dies. WebSocket and other upgrades are spliced through as TCP.
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
  /** A connect to `upstream` failed: it goes last for a while, and its pooled sockets close. */
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
      context.end(upstream);
      resolve(outcome);
    };
    context.begin(upstream);
    const out = http.request({
      host: upstream.address,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: forwardedHeaders(req, req.headers),
      agent: context.agentFor(upstream),
      setHost: false,
    });
    const sent = () => {
      connected = true;
      timers.push(setTimeout(() => probe(), limits.ingressAnswerProbeMs));
      // A request tried again after a kept-alive socket failed has no body left to pipe.
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
    timers.push(
      setTimeout(() => {
        if (!connected) out.destroy(new Error("connect timed out"));
      }, limits.ingressConnectTimeoutMs),
    );
    out.on("socket", (socket: net.Socket) => {
      if (socket.connecting) socket.once("connect", sent);
      else sent();
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
      // Closed before any answer: a body-less request may go to the next task (a kept-alive
      // socket the task had closed, a container whose server is not yet listening).
      if (!answered && bodiless(req)) return settle("unsent");
      if (!answered) refuse(res, 502, `task ${upstream.taskId} closed the connection`);
      else res.destroy();
      settle("done");
    });
    res.once("close", () => {
      if (!res.writableFinished) out.destroy();
      settle("done");
    });
  });
}

/** A request with no body may be sent again as it was: nothing of it was consumed. */
function bodiless(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] === undefined && (length === undefined || length === "0");
}

/** The request's headers for the upstream: hop-by-hop ones out, X-Forwarded-* in. */
export function forwardedHeaders(
  req: http.IncomingMessage,
  source: http.IncomingHttpHeaders,
  keepUpgrade = false,
): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  const listed = String(source.connection ?? "")
    .toLowerCase()
    .split(",")
    .map((name) => name.trim());
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined) continue;
    const dropped = hopByHop.includes(name) || listed.includes(name);
    if (dropped && !(keepUpgrade && (name === "connection" || name === "upgrade"))) continue;
    headers[name] = value;
  }
  const client = clientAddress(req.socket);
  const before = source["x-forwarded-for"];
  headers["x-forwarded-for"] = before ? `${String(before)}, ${client}` : client;
  headers["x-forwarded-proto"] = "http";
  if (source.host !== undefined && source["x-forwarded-host"] === undefined) {
    headers["x-forwarded-host"] = source.host;
  }
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

/** An upgrade (WebSocket): the first upstream that connects gets the raw request, then TCP. */
export async function forwardUpgrade(
  context: ForwardContext,
  route: IngressRoute,
  req: http.IncomingMessage,
  client: net.Socket,
  head: Buffer,
): Promise<void> {
  client.on("error", () => undefined);
  const reached = await connectFirst(context, route, client);
  if (reached) {
    const { upstream, socket } = reached;
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (const [name, value] of Object.entries(forwardedHeaders(req, req.headers, true))) {
      for (const each of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${each}`);
    }
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    context.begin(upstream);
    splice(client, socket, () => context.end(upstream));
  } else if (!client.destroyed) {
    client.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n");
  }
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
