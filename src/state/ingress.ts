// The rules of ingress ports as the state machine keeps them: each names a container of the
// service, its container port is published, and no port is claimed twice across the fleet (two
// services share a port only in HTTP mode with Host names apart; a task's fixed host port and
// shoal's own API port are never an ingress port). Pure: the view is the committed state.
import { fail, ok, type Result } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { ContainerSpec, Ingress, Service } from "../core/types.ts";
import type { IngressSpec } from "./spec.ts";
import type { StateView } from "./views.ts";

/** Resolves each ingress's container (named, else the first with ports, else the first). */
export function resolveIngress(
  specs: readonly IngressSpec[],
  containers: readonly ContainerSpec[],
): Result<Ingress[]> {
  const fallback = containers.find((c) => c.ports.length > 0) ?? containers[0];
  const resolved: Ingress[] = [];
  for (const spec of specs) {
    const name = spec.container ?? fallback?.name;
    if (name === undefined || !containers.some((c) => c.name === name)) {
      return fail("E_VALIDATION", `ingress ${spec.port}: the task has no container ${name}`);
    }
    resolved.push({
      port: spec.port,
      container: name,
      containerPort: spec.containerPort,
      protocol: spec.protocol,
      hosts: spec.hosts.map((host) => host.toLowerCase()),
      proxyProtocol: spec.proxyProtocol ?? null,
    });
  }
  return ok(resolved);
}

/**
 * The containers with each ingress's container port published (on a free host port) unless the
 * container already publishes it: the node forwards to that host port.
 */
export function withIngressPorts(
  containers: readonly ContainerSpec[],
  ingress: readonly Ingress[],
): ContainerSpec[] {
  return containers.map((container) => {
    const missing = ingress.filter(
      (each) =>
        each.container === container.name &&
        !container.ports.some((p) => p.container === each.containerPort && p.protocol === "tcp"),
    );
    const ports = [...new Set(missing.map((each) => each.containerPort))].map((port) => ({
      container: port,
      protocol: "tcp" as const,
    }));
    return ports.length === 0 ? container : { ...container, ports: [...container.ports, ...ports] };
  });
}

/** Why `ingress` of service `name` (running `containers`) cannot be had; null when it can. */
export function ingressConflict(
  view: StateView,
  name: string,
  ingress: readonly Ingress[],
  containers: readonly ContainerSpec[],
): string | null {
  // Every create and update passes here: one without ingress reads nothing else.
  if (ingress.length === 0) return null;
  const unpublished = ingress.find((each) => !publishes(containers, each));
  if (unpublished) {
    return `ingress port ${unpublished.port}: container ${unpublished.container} does not publish port ${unpublished.containerPort}`;
  }
  const ports = new Set(ingress.map((each) => each.port));
  for (const service of view.services()) {
    if (service.name !== name) for (const each of service.ingress) ports.add(each.port);
  }
  if (ports.size > limits.ingressListenersPerNodeMax) {
    return `the fleet would have ${ports.size} ingress ports, more than ${limits.ingressListenersPerNodeMax}`;
  }
  for (const each of ingress) {
    const reason =
      apiPortConflict(view, each.port) ??
      serviceConflict(view, name, each) ??
      fixedPortConflict(view, name, each.port, containers);
    if (reason !== null) return `ingress port ${each.port}: ${reason}`;
  }
  return null;
}

/** Why a fixed host port of `containers` (of service `name`, or a one-off task) is taken. */
export function fixedPortTaken(
  view: StateView,
  name: string | null,
  containers: readonly ContainerSpec[],
): string | null {
  for (const port of fixedHostPorts(containers)) {
    const holder = view.services().find((s) => s.name !== name && claims(s, port));
    if (holder) return `host port ${port} is an ingress port of service ${holder.name}`;
  }
  return null;
}

function claims(service: Service, port: number): boolean {
  return service.ingress.some((each) => each.port === port);
}

function apiPortConflict(view: StateView, port: number): string | null {
  const node = view.nodes().find((each) => each.status !== "left" && each.port === port);
  return node ? `it is shoal's API port on node ${node.name}` : null;
}

function serviceConflict(view: StateView, name: string, ingress: Ingress): string | null {
  for (const other of view.services()) {
    if (other.name === name) continue;
    const theirs = other.ingress.find((each) => each.port === ingress.port);
    if (theirs && !hostsApart(ingress, theirs)) {
      return `service ${other.name} already listens there (two services share a port only with protocol http and different hosts)`;
    }
  }
  return null;
}

function hostsApart(a: Ingress, b: Ingress): boolean {
  if (a.protocol !== "http" || b.protocol !== "http") return false;
  if (a.hosts.length === 0 || b.hosts.length === 0) return false;
  return !a.hosts.some((host) => b.hosts.includes(host));
}

function fixedPortConflict(
  view: StateView,
  name: string,
  port: number,
  containers: readonly ContainerSpec[],
): string | null {
  if (fixedHostPorts(containers).includes(port)) return "a container of the service publishes it";
  for (const service of view.services()) {
    if (service.name === name) continue;
    const { family, revision } = service.taskDefinition;
    const definition = view.taskDefinition(family, revision);
    if (definition && fixedHostPorts(definition.containers).includes(port)) {
      return `service ${service.name} publishes it as a fixed host port`;
    }
  }
  // Tasks of older revisions (a deployment under way) and one-off tasks hold their ports too.
  for (const task of view.activeTasks()) {
    const definition = view.taskDefinition(
      task.taskDefinition.family,
      task.taskDefinition.revision,
    );
    if (definition && fixedHostPorts(definition.containers).includes(port)) {
      return `task ${task.id} publishes it as a fixed host port`;
    }
  }
  return null;
}

/** Whether the ingress's container publishes its container port (on any host port). */
function publishes(containers: readonly ContainerSpec[], ingress: Ingress): boolean {
  const container = containers.find((c) => c.name === ingress.container);
  const ports = container?.ports ?? [];
  return ports.some((p) => p.container === ingress.containerPort && p.protocol === "tcp");
}

function fixedHostPorts(containers: readonly ContainerSpec[]): number[] {
  return containers.flatMap((c) =>
    c.ports
      .filter((p) => p.protocol === "tcp" && p.host !== undefined && p.host > 0)
      .map((p) => p.host as number),
  );
}
