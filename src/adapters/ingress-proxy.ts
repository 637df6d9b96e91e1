// The ingress, a node duty: this node listens on every ingress port of the fleet and forwards
// each connection to a healthy task of the service, wherever it runs, through the task node's
// published host port (plain TCP that works on every node, with no overlay network or kernel
// rules to set up). The table comes from this node's own replica after every applied change;
// the choice of upstream is agent/ingress-routes.ts's. Owned on Node's net and http: a proxy
// library forwards to one upstream per request, and the retry on another task before anything
// was sent, which is the point here, would have to be written around it anyway.
import http from "node:http";
import net from "node:net";
import {
  attemptOrder,
  type IngressRoute,
  type Listener,
  routeFor,
  type Upstream,
  upstreamKey,
} from "../agent/ingress-routes.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import {
  connectFirst,
  type ForwardContext,
  forwardRequest,
  forwardUpgrade,
  refuse,
} from "./ingress-http.ts";
import { connectWithin, type Dial, dialTcp, proxyHeader, splice } from "./ingress-tcp.ts";

/** Whether this node listens on an ingress port, and why not when it does not. */
export interface ListenerStatus {
  port: number;
  listening: boolean;
  message: string;
}

export interface IngressProxyOptions {
  /** The listeners this node should have, from its replica. */
  listeners: () => Listener[];
  /** Calls back after the replica applied changes; returns the unsubscribe. */
  onChange: (listener: () => void) => () => void;
  monotonic: () => number;
  random: () => number;
  logger: Logger;
  /** Called when a port starts listening or fails to. */
  onStatus?: (statuses: ListenerStatus[]) => void;
  /** Where the ports listen; every address by default. */
  host?: string;
  dial?: Dial;
  /** How often a port another program holds is tried again. */
  listenRetryMs?: number;
}

interface OpenPort {
  protocol: Listener["protocol"];
  server: net.Server;
  listener: Listener;
  status: ListenerStatus;
  retry: NodeJS.Timeout | null;
}

const upstreamAgentOptions: http.AgentOptions = {
  keepAlive: true,
  maxSockets: limits.ingressUpstreamSocketsMax,
  maxFreeSockets: limits.ingressUpstreamFreeSocketsMax,
  // Shorter than the usual servers' keep-alive (Node's 5 s), so an idle socket is ours to close
  // and a request seldom meets one the task just closed.
  timeout: limits.ingressUpstreamIdleMs,
};

export class IngressProxy implements ForwardContext {
  private readonly ports = new Map<number, OpenPort>();
  private readonly open = new Map<string, number>();
  private readonly failedAtMs = new Map<string, number>();
  private readonly agents = new Map<string, http.Agent>();
  private readonly probes = new Map<string, Promise<boolean>>();
  private unsubscribe: (() => void) | null = null;
  private refresh: NodeJS.Timeout | null = null;
  readonly dial: Dial;

  constructor(private readonly options: IngressProxyOptions) {
    this.dial = options.dial ?? dialTcp;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.options.onChange(() => this.refreshSoon());
    this.sync();
  }

  /** What each port does now, by port. */
  statuses(): ListenerStatus[] {
    return [...this.ports.values()].map((port) => port.status).sort((a, b) => a.port - b.port);
  }

  /** Stops listening; connections already open end on their own or with the process. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.refresh) clearTimeout(this.refresh);
    await Promise.all([...this.ports.keys()].map((port) => this.closePort(port)));
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /** Changes come in bursts (a batch of writes): one look at the replica serves them all. */
  private refreshSoon(): void {
    if (this.refresh) return;
    this.refresh = setTimeout(() => {
      this.refresh = null;
      if (this.unsubscribe) this.sync();
    }, limits.ingressRefreshMs);
  }

  /** Opens, updates and closes ports to match the replica. */
  sync(): void {
    const wanted = new Map(this.options.listeners().map((l) => [l.port, l]));
    for (const [port, open] of this.ports) {
      if (wanted.get(port)?.protocol !== open.protocol) void this.closePort(port);
    }
    for (const listener of wanted.values()) {
      const open = this.ports.get(listener.port);
      if (open) open.listener = listener;
      else this.openPort(listener);
    }
    this.forgetGone(wanted);
  }

  private openPort(listener: Listener): void {
    const server =
      listener.protocol === "http" ? this.httpServer(listener.port) : this.tcpServer(listener.port);
    server.maxConnections = limits.ingressConnectionsMax;
    const status = { port: listener.port, listening: false, message: "opening" };
    const open: OpenPort = { protocol: listener.protocol, server, listener, status, retry: null };
    this.ports.set(listener.port, open);
    server.on("error", (error: NodeJS.ErrnoException) => this.listenFailed(open, error));
    server.on("listening", () => this.setStatus(open, true, "listening"));
    server.listen({ port: listener.port, host: this.options.host ?? "0.0.0.0" });
  }

  private listenFailed(open: OpenPort, error: NodeJS.ErrnoException): void {
    if (this.ports.get(open.listener.port) !== open) return;
    const message =
      error.code === "EADDRINUSE"
        ? "another program holds the port"
        : error.code === "EACCES"
          ? "ports below 1024 need the agent to run as root"
          : error.message;
    this.setStatus(open, false, message);
    open.retry = setTimeout(() => {
      open.retry = null;
      if (this.ports.get(open.listener.port) !== open) return;
      open.server.listen({ port: open.listener.port, host: this.options.host ?? "0.0.0.0" });
    }, this.options.listenRetryMs ?? limits.ingressListenRetryMs);
  }

  private setStatus(open: OpenPort, listening: boolean, message: string): void {
    const before = open.status;
    if (before.listening === listening && before.message === message) return;
    open.status = { port: open.listener.port, listening, message };
    const fields = { port: open.listener.port, protocol: open.protocol };
    if (listening) this.options.logger.info(fields, "ingress listening");
    else this.options.logger.warn({ ...fields, reason: message }, "ingress cannot listen");
    this.options.onStatus?.(this.statuses());
  }

  private async closePort(port: number): Promise<void> {
    const open = this.ports.get(port);
    if (!open) return;
    this.ports.delete(port);
    if (open.retry) clearTimeout(open.retry);
    this.options.onStatus?.(this.statuses());
    await new Promise<void>((resolve) => {
      if (!open.server.listening) return resolve();
      open.server.close(() => resolve());
      // Kept-alive HTTP clients that sit idle would hold the close open.
      (open.server as http.Server).closeIdleConnections?.();
    });
  }

  private tcpServer(port: number): net.Server {
    return net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      client.on("error", () => client.destroy());
      const route = this.ports.get(port)?.listener.routes[0];
      if (!route) return client.destroy();
      void this.forwardTcp(route, client);
    });
  }

  private async forwardTcp(route: IngressRoute, client: net.Socket): Promise<void> {
    const reached = await connectFirst(this, route, client);
    if (!reached) return void client.destroy();
    const { upstream, socket } = reached;
    if (route.proxyProtocol === "v2") socket.write(proxyHeader(client));
    this.begin(upstream);
    splice(client, socket, () => this.end(upstream));
  }

  private httpServer(port: number): http.Server {
    const server = http.createServer(
      {
        keepAliveTimeout: limits.ingressHttpIdleMs,
        headersTimeout: limits.httpHeadersTimeoutMs,
        // Uploads and long answers take what they take; the clients decide.
        requestTimeout: 0,
      },
      (req, res) => {
        const route = this.routeOf(port, req);
        if (!route) return refuse(res, 404, `no service for host ${req.headers.host ?? "-"}`);
        void forwardRequest(this, route, req, res);
      },
    );
    server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      const route = this.routeOf(port, req);
      if (!route) return socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
      void forwardUpgrade(this, route, req, socket, head);
    });
    return server;
  }

  private routeOf(port: number, req: http.IncomingMessage): IngressRoute | null {
    const listener = this.ports.get(port)?.listener;
    return listener ? routeFor(listener, req.headers.host) : null;
  }

  // ---- ForwardContext: what the forwarders share ------------------------------------------

  order(route: IngressRoute): Upstream[] {
    const stats = { open: this.open, failedAtMs: this.failedAtMs };
    return attemptOrder(route.upstreams, stats, this.options.monotonic(), this.options.random);
  }

  agentFor(upstream: Upstream): http.Agent {
    const key = upstreamKey(upstream);
    const known = this.agents.get(key);
    if (known) return known;
    const agent = new http.Agent(upstreamAgentOptions);
    this.agents.set(key, agent);
    return agent;
  }

  begin(upstream: Upstream): void {
    const key = upstreamKey(upstream);
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
  }

  end(upstream: Upstream): void {
    const key = upstreamKey(upstream);
    const left = (this.open.get(key) ?? 1) - 1;
    if (left > 0) this.open.set(key, left);
    else this.open.delete(key);
  }

  failed(upstream: Upstream): void {
    const key = upstreamKey(upstream);
    this.failedAtMs.set(key, this.options.monotonic());
    this.agents.get(key)?.destroy();
    this.agents.delete(key);
  }

  answers(upstream: Upstream): Promise<boolean> {
    const key = upstreamKey(upstream);
    const asked = this.probes.get(key);
    if (asked) return asked;
    const probe = connectWithin(this.dial, upstream, limits.ingressConnectTimeoutMs).then(
      (socket) => {
        this.probes.delete(key);
        socket?.destroy();
        return socket !== null;
      },
    );
    this.probes.set(key, probe);
    return probe;
  }

  /** Pools and failure marks of upstreams no route holds any more. */
  private forgetGone(wanted: ReadonlyMap<number, Listener>): void {
    const held = new Set<string>();
    for (const listener of wanted.values()) {
      for (const route of listener.routes) {
        for (const upstream of route.upstreams) held.add(upstreamKey(upstream));
      }
    }
    for (const key of this.failedAtMs.keys()) if (!held.has(key)) this.failedAtMs.delete(key);
    for (const [key, agent] of this.agents) {
      if (held.has(key)) continue;
      // Requests in flight finish (a draining task keeps serving them); idle sockets go now.
      for (const sockets of Object.values(agent.freeSockets)) {
        for (const socket of sockets ?? []) socket.destroy();
      }
      if (Object.keys(agent.sockets).length === 0) {
        agent.destroy();
        this.agents.delete(key);
      }
    }
  }
}
