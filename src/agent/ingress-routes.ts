// What a node's ingress listens on and where each connection may go, from the node's own replica
// of the store (no round trip), and the choice among those upstreams. Pure: the proxy
// (adapters/ingress-proxy.ts) passes in its connection counts, its recent connect failures, the
// time and a random source.
import { limits } from "../core/limits.ts";
import type {
  Ingress,
  IngressProtocol,
  NodeInfo,
  Service,
  Task,
  TaskContainer,
} from "../core/types.ts";
import type { StateView } from "../state/views.ts";

/** One task's published container port, as a connection reaches it. */
export interface Upstream {
  taskId: string;
  node: string;
  /** 127.0.0.1 for a task on this node (the engine publishes on every address), else the node's. */
  address: string;
  port: number;
  local: boolean;
}

/** A service behind a listener: every Host when `hosts` is empty. */
export interface IngressRoute {
  service: string;
  hosts: string[];
  proxyProtocol: "v2" | null;
  upstreams: Upstream[];
}

/** One port this node listens on; HTTP listeners may carry several services apart by Host. */
export interface Listener {
  port: number;
  protocol: IngressProtocol;
  routes: IngressRoute[];
}

export interface IngressState {
  services: readonly Service[];
  /** The tasks the store still cares about (desired running or not yet terminal). */
  tasks: readonly Task[];
  nodes: readonly NodeInfo[];
}

/** Commands that may change which tasks of a service with ingress serve, besides the services'. */
const servingChanges = [
  "task.report",
  "task.stop",
  "plan.apply",
  "node.down",
  "node.up",
  "node.leave",
  "node.drain",
  "node.activate",
  "node.register",
];

/**
 * Whether an applied command may change the table, so that a burst of writes costs it nothing
 * when it cannot (reading the services after each would have the replica parse them again): a
 * refused command changed nothing, and while no port is open only a service written with
 * ingress can open one.
 */
export function changesIngress(
  entry: { command: { type: string; ingress?: readonly unknown[] }; result: { ok: boolean } },
  anyIngress: boolean,
): boolean {
  if (!entry.result.ok) return false;
  const { type, ingress } = entry.command;
  if (!anyIngress) return (ingress?.length ?? 0) > 0;
  return type.startsWith("service.") || servingChanges.includes(type);
}

/** What the table is made of, read from a replica (no tasks read when no service has ingress). */
export function ingressState(view: StateView): IngressState {
  const services = view.services();
  if (!services.some((service) => service.ingress.length > 0)) {
    return { services, tasks: [], nodes: [] };
  }
  return { services, tasks: view.activeTasks(), nodes: view.nodes() };
}

/**
 * The listeners of node `nodeId`: every ingress port of every service, each with the tasks that
 * may take a new connection. Sorted by port, so that equal states give equal tables.
 */
export function ingressListeners(state: IngressState, nodeId: string): Listener[] {
  const nodes = new Map(state.nodes.map((node) => [node.id, node]));
  // A node that left the fleet serves nothing of it.
  if (nodes.get(nodeId)?.status === "left") return [];
  const byPort = new Map<number, Listener>();
  for (const service of state.services) {
    for (const ingress of service.ingress) {
      const listener = byPort.get(ingress.port) ?? {
        port: ingress.port,
        protocol: ingress.protocol,
        routes: [],
      };
      byPort.set(ingress.port, listener);
      listener.routes.push({
        service: service.name,
        hosts: ingress.hosts,
        proxyProtocol: ingress.proxyProtocol,
        upstreams: upstreamsOf(service, ingress, state.tasks, nodes, nodeId),
      });
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

function upstreamsOf(
  service: Service,
  ingress: Ingress,
  tasks: readonly Task[],
  nodes: ReadonlyMap<string, NodeInfo>,
  nodeId: string,
): Upstream[] {
  const upstreams: Upstream[] = [];
  for (const task of tasks) {
    if (task.service !== service.name || !takesConnections(task)) continue;
    const node = task.node === null ? undefined : nodes.get(task.node);
    if (!node || (node.status !== "ready" && node.status !== "draining")) continue;
    const container = task.containers.find((c) => c.name === ingress.container);
    const port = container && servingPort(container, ingress.containerPort);
    if (port === null || port === undefined) continue;
    const local = node.id === nodeId;
    upstreams.push({
      taskId: task.id,
      node: node.id,
      address: local ? "127.0.0.1" : node.address,
      port,
      local,
    });
  }
  return upstreams;
}

/**
 * A task takes new connections while it runs and is wanted: one the scheduler asked to stop is
 * draining, and gets none (its node keeps it for the service's drainMs).
 */
function takesConnections(task: Task): boolean {
  return task.desired === "running" && task.state === "running";
}

/** The host port publishing `containerPort` of a container that runs and passes its checks. */
function servingPort(container: TaskContainer, containerPort: number): number | null {
  if (container.state !== "running") return null;
  if (container.health !== null && container.health !== "healthy") return null;
  const published = container.ports.find(
    (p) => p.container === containerPort && p.protocol === "tcp",
  );
  return published?.host ?? null;
}

/** The route of an HTTP request by its Host header: a named host first, else a route for all. */
export function routeFor(listener: Listener, host: string | undefined): IngressRoute | null {
  const name = hostName(host);
  const named = listener.routes.find((route) => route.hosts.includes(name));
  return named ?? listener.routes.find((route) => route.hosts.length === 0) ?? null;
}

/** `Web.Home.Arpa:8080` -> `web.home.arpa`; `[::1]:80` -> `[::1]`. */
export function hostName(host: string | undefined): string {
  const value = (host ?? "").trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.indexOf(":");
  return colon === -1 ? value : value.slice(0, colon);
}

/** What the proxy knows of each upstream: connections open now, and when its connects failed. */
export interface UpstreamStats {
  /** Open connections by `upstreamKey`. */
  open: ReadonlyMap<string, number>;
  /** When a connect to the upstream last failed (monotonic ms), by `upstreamKey`. */
  failedAtMs: ReadonlyMap<string, number>;
}

export function upstreamKey(upstream: Upstream): string {
  return `${upstream.address}:${upstream.port}`;
}

/**
 * The upstreams to try for one new connection, in order, at most `limits.ingressAttemptsMax`: a
 * task on this node first, then the others by the power of two choices on open connections;
 * an upstream whose connect failed within `ingressFailedUpstreamMs` only after every other, so
 * traffic leaves a dead node before the store marks it down, and comes back once it answers.
 */
export function attemptOrder(
  upstreams: readonly Upstream[],
  stats: UpstreamStats,
  nowMs: number,
  random: () => number,
): Upstream[] {
  const failed = (u: Upstream) => {
    const at = stats.failedAtMs.get(upstreamKey(u));
    return at !== undefined && nowMs - at < limits.ingressFailedUpstreamMs;
  };
  const open = (u: Upstream) => stats.open.get(upstreamKey(u)) ?? 0;
  const fresh = upstreams.filter((u) => !failed(u));
  const local = fresh.filter((u) => u.local).sort((a, b) => open(a) - open(b));
  const remote = twoChoices(
    fresh.filter((u) => !u.local),
    open,
    random,
  );
  const suspects = upstreams.filter(failed);
  return [...local, ...remote, ...suspects].slice(0, limits.ingressAttemptsMax);
}

/** Orders `candidates` by repeated power-of-two-choices draws on `load`. */
function twoChoices(
  candidates: Upstream[],
  load: (u: Upstream) => number,
  random: () => number,
): Upstream[] {
  const left = [...candidates];
  const order: Upstream[] = [];
  while (left.length > 0 && order.length < limits.ingressAttemptsMax) {
    const a = Math.floor(random() * left.length);
    let b = Math.floor(random() * (left.length - 1));
    if (b >= a) b += 1;
    const pick =
      left.length === 1 || load(left[a] as Upstream) <= load(left[b] as Upstream) ? a : b;
    order.push(left[pick] as Upstream);
    left.splice(pick, 1);
  }
  return order;
}
