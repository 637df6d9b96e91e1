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
  /** How long a closing port's connections may go on. */
  closeGraceMs?: number;
  /** Open connections of one client address per port. */
  connectionsPerClientMax?: number;
}

interface OpenPort {
  protocol: Listener["protocol"];
  server: net.Server;
  listener: Listener;
  status: ListenerStatus;
  retry: NodeJS.Timeout | null;
  /** Set once the port is to close: a listen still under way closes as it completes. */
  closed: boolean;
  /** Client connections open now, to end them when the port closes. */
  sockets: Set<net.Socket>;
  /** Open connections by client address, each at most ingressConnectionsPerClientMax. */
  perClient: Map<string, number>;
}

// No cap on sockets per upstream: a request never waits in a pool, where its connect deadline
// could not run (client connections are capped per port and per client instead).
const upstreamAgentOptions: http.AgentOptions = {
  keepAlive: true,
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
  /** When a probe of each upstream last found it answering (monotonic ms). */
  private readonly answeredAtMs = new Map<string, number>();
  private unsubscribe: (() => void) | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private resync: NodeJS.Timeout | null = null;
  readonly dial: Dial;

  constructor(private readonly options: IngressProxyOptions) {
    this.dial = options.dial ?? dialTcp;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.options.onChange(() => this.refreshSoon());
    // Also now and then: a snapshot installed under the replica applies no command.
    this.resync = setInterval(() => this.refreshSoon(), limits.ingressResyncMs);
    this.sync();
  }

  /** Whether any port is open or opening: commands of tasks and nodes matter only then. */
  get serving(): boolean {
    return this.ports.size > 0;
  }

  /** What each port does now, by port. */
  statuses(): ListenerStatus[] {
    return [...this.ports.values()].map((port) => port.status).sort((a, b) => a.port - b.port);
  }

  /** Stops listening; open connections get ingressCloseGraceMs to end, then are cut. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.refresh) clearTimeout(this.refresh);
    if (this.resync) clearInterval(this.resync);
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
    const changed = new Set<number>();
    for (const [port, open] of this.ports) {
      const protocol = wanted.get(port)?.protocol;
      if (protocol === open.protocol) continue;
      void this.closePort(port);
      // A port that changes protocol opens again at the next look, once the old one let go.
      if (protocol !== undefined) changed.add(port);
    }
    for (const listener of wanted.values()) {
      const open = this.ports.get(listener.port);
      if (open) open.listener = listener;
      else if (!changed.has(listener.port)) this.openPort(listener);
    }
    if (changed.size > 0) this.refreshSoon();
    this.forgetGone(wanted);
  }

  private openPort(listener: Listener): void {
    const status = { port: listener.port, listening: false, message: "opening" };
    const open: OpenPort = {
      protocol: listener.protocol,
      server: new net.Server(),
      listener,
      status,
      retry: null,
      closed: false,
      sockets: new Set(),
      perClient: new Map(),
    };
    open.server = listener.protocol === "http" ? this.httpServer(open) : this.tcpServer(open);
    const { server } = open;
    server.maxConnections = limits.ingressConnectionsMax;
    this.ports.set(listener.port, open);
    server.on("connection", (socket: net.Socket) => this.admit(open, socket));
    server.on("error", (error: NodeJS.ErrnoException) => this.listenFailed(open, error));
    server.on("listening", () => {
      if (open.closed) server.close();
      else this.setStatus(open, true, "listening");
    });
    server.listen({ port: listener.port, host: this.options.host ?? "0.0.0.0" });
  }

  /** Counts a client connection, refusing one client more than its share of the port. */
  private admit(open: OpenPort, socket: net.Socket): void {
    const client = socket.remoteAddress ?? "";
    const count = (open.perClient.get(client) ?? 0) + 1;
    if (count > (this.options.connectionsPerClientMax ?? limits.ingressConnectionsPerClientMax)) {
      socket.destroy();
      return;
    }
    open.perClient.set(client, count);
    open.sockets.add(socket);
    socket.once("close", () => {
      open.sockets.delete(socket);
      const left = (open.perClient.get(client) ?? 1) - 1;
      if (left > 0) open.perClient.set(client, left);
      else open.perClient.delete(client);
    });
  }

  private listenFailed(open: OpenPort, error: NodeJS.ErrnoException): void {
    if (open.closed) return;
    // An accept that failed (EMFILE, say) on a port that listens: it still listens.
    if (open.server.listening) {
      this.options.logger.warn({ port: open.listener.port, err: error }, "ingress accept failed");
      return;
    }
    const message =
      error.code === "EADDRINUSE"
        ? "another program holds the port"
        : error.code === "EACCES"
          ? "ports below 1024 need the agent to run as root"
          : error.message;
    this.setStatus(open, false, message);
    open.retry = setTimeout(() => {
      open.retry = null;
      if (open.closed) return;
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

  /**
   * Stops accepting at once; open connections get ingressCloseGraceMs (idle kept-alive ones
   * none), then are cut, so that a node stops in bounded time.
   */
  private async closePort(port: number): Promise<void> {
    const open = this.ports.get(port);
    if (!open) return;
    this.ports.delete(port);
    open.closed = true;
    if (open.retry) clearTimeout(open.retry);
    this.options.onStatus?.(this.statuses());
    if (!open.server.listening) return;
    const closed = new Promise<void>((resolve) => open.server.close(() => resolve()));
    (open.server as http.Server).closeIdleConnections?.();
    const grace = setTimeout(() => {
      for (const socket of open.sockets) socket.destroy();
    }, this.options.closeGraceMs ?? limits.ingressCloseGraceMs);
    await closed;
    clearTimeout(grace);
  }

  private tcpServer(open: OpenPort): net.Server {
    return net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
      client.on("error", () => client.destroy());
      const route = open.closed ? undefined : open.listener.routes[0];
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

  private httpServer(open: OpenPort): http.Server {
    const server = http.createServer(
      {
        keepAliveTimeout: limits.ingressHttpIdleMs,
        headersTimeout: limits.httpHeadersTimeoutMs,
        // Uploads and long answers take what they take; the clients decide.
        requestTimeout: 0,
      },
      (req, res) => {
        const route = routeOf(open, req);
        if (!route) return refuse(res, 404, `no service for host ${req.headers.host ?? "-"}`);
        void forwardRequest(this, route, req, res);
      },
    );
    server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      const route = routeOf(open, req);
      if (!route) return socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
      void forwardUpgrade(this, route, req, socket, head);
    });
    return server;
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

  /** Requests in flight keep their sockets (each finds out for itself); idle ones go now. */
  failed(upstream: Upstream): void {
    const key = upstreamKey(upstream);
    this.failedAtMs.set(key, this.options.monotonic());
    this.answeredAtMs.delete(key);
    const agent = this.agents.get(key);
    if (agent) destroyIdle(agent);
  }

  /** One probe at a time per upstream, and a fresh answer stands for ingressProbeFreshMs. */
  answers(upstream: Upstream): Promise<boolean> {
    const key = upstreamKey(upstream);
    const answeredAt = this.answeredAtMs.get(key);
    const now = this.options.monotonic();
    if (answeredAt !== undefined && now - answeredAt < limits.ingressProbeFreshMs) {
      return Promise.resolve(true);
    }
    const asked = this.probes.get(key);
    if (asked) return asked;
    const probe = connectWithin(this.dial, upstream, limits.ingressConnectTimeoutMs).then(
      (socket) => {
        this.probes.delete(key);
        socket?.destroy();
        if (socket) this.answeredAtMs.set(key, this.options.monotonic());
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
    for (const key of this.answeredAtMs.keys()) if (!held.has(key)) this.answeredAtMs.delete(key);
    for (const [key, agent] of this.agents) {
      if (held.has(key)) continue;
      // Requests in flight finish (a draining task keeps serving them); idle sockets go now.
      destroyIdle(agent);
      if (Object.keys(agent.sockets).length === 0) {
        agent.destroy();
        this.agents.delete(key);
      }
    }
  }
}

/** The route of an HTTP request on a port; none once the port is closing. */
function routeOf(open: OpenPort, req: http.IncomingMessage): IngressRoute | null {
  return open.closed ? null : routeFor(open.listener, req.headers.host);
}

function destroyIdle(agent: http.Agent): void {
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) socket.destroy();
  }
}
