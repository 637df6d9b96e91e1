import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import type { Ingress, TaskContainer } from "../core/types.ts";
import { SeededRandom } from "../raft/seeded-random.ts";
import { node, service, task } from "../scheduler/test-harness.ts";
import {
  attemptOrder,
  changesIngress,
  hostName,
  type IngressState,
  ingressListeners,
  routeFor,
  type Upstream,
  upstreamKey,
} from "./ingress-routes.ts";

const ingress: Ingress = {
  port: 8080,
  container: "httpd",
  containerPort: 80,
  protocol: "tcp",
  hosts: [],
  proxyProtocol: null,
};

function serving(hostPort: number, overrides: Partial<TaskContainer> = {}): TaskContainer[] {
  return [
    {
      name: "httpd",
      containerId: `c-${hostPort}`,
      state: "running",
      exitCode: null,
      health: null,
      ports: [{ container: 80, host: hostPort, protocol: "tcp" }],
      ...overrides,
    },
  ];
}

const nodes = [
  node("n1", { address: "10.0.0.1" }),
  node("n2", { address: "10.0.0.2" }),
  node("n3", { address: "10.0.0.3", status: "draining" }),
  node("n4", { address: "10.0.0.4", status: "down" }),
];

function state(tasks: IngressState["tasks"]): IngressState {
  return { services: [service("web", { ingress: [ingress] })], tasks, nodes };
}

const idsOf = (state: IngressState, nodeId = "n1") =>
  ingressListeners(state, nodeId)[0]?.routes[0]?.upstreams.map((u) => u.taskId);

describe("ingress upstreams", () => {
  it("are the running, wanted tasks that pass their checks on nodes that are up", () => {
    const upstreams = idsOf(
      state([
        task("ok", "web", "n2", { containers: serving(31001) }),
        task("healthy", "web", "n2", { containers: serving(31002, { health: "healthy" }) }),
        task("on-draining-node", "web", "n3", { containers: serving(31003) }),
        task("unhealthy", "web", "n2", { containers: serving(31004, { health: "unhealthy" }) }),
        task("checks-starting", "web", "n2", {
          containers: serving(31005, { health: "starting" }),
        }),
        task("on-down-node", "web", "n4", { containers: serving(31006) }),
        task("stopping", "web", "n2", { desired: "stopped", containers: serving(31007) }),
        task("starting", "web", "n2", { state: "starting", containers: serving(31008) }),
        task("exited", "web", "n2", { containers: serving(31009, { state: "exited" }) }),
        task("unpublished", "web", "n2", { containers: serving(0, { ports: [] }) }),
        task("other-service", "db", "n2", { containers: serving(31010) }),
        task("pending", "web", null),
      ]),
    );
    assert.deepEqual(upstreams, ["ok", "healthy", "on-draining-node"]);
  });

  it("reach a task on this node through loopback and others through their node's address", () => {
    const listeners = ingressListeners(
      state([
        task("here", "web", "n1", { containers: serving(31001) }),
        task("there", "web", "n2", { containers: serving(31002) }),
      ]),
      "n1",
    );
    assert.deepEqual(listeners[0]?.routes[0]?.upstreams, [
      { taskId: "here", node: "n1", address: "127.0.0.1", port: 31001, local: true },
      { taskId: "there", node: "n2", address: "10.0.0.2", port: 31002, local: false },
    ]);
  });

  it("give a node that runs none of the tasks a listener all the same", () => {
    const listeners = ingressListeners(
      state([task("there", "web", "n2", { containers: serving(31002) })]),
      "n3",
    );
    assert.equal(listeners.length, 1);
    assert.equal(listeners[0]?.port, 8080);
    assert.equal(listeners[0]?.routes[0]?.upstreams.length, 1);
  });
});

const up = (id: string, local = false): Upstream => ({
  taskId: id,
  node: id,
  address: local ? "127.0.0.1" : `10.0.0.${id.length}${id}`,
  port: 31000,
  local,
});

const noStats = { open: new Map<string, number>(), failedAtMs: new Map<string, number>() };

describe("the attempt order of a new connection", () => {
  it("tries a task on this node first", () => {
    const random = new SeededRandom(1);
    for (let round = 0; round < 50; round++) {
      const order = attemptOrder([up("a"), up("b"), up("here", true)], noStats, 0, () =>
        random.next(),
      );
      assert.equal(order[0]?.taskId, "here");
      assert.equal(order.length, limits.ingressAttemptsMax);
    }
  });

  it("leaves an upstream whose connect just failed for last, and tries it again later", () => {
    const failedAtMs = new Map([[upstreamKey(up("a")), 1000]]);
    const stats = { open: new Map<string, number>(), failedAtMs };
    const random = new SeededRandom(2);
    for (let round = 0; round < 50; round++) {
      const order = attemptOrder([up("a"), up("b"), up("c")], stats, 1000, () => random.next());
      assert.equal(order.at(-1)?.taskId, "a");
    }
    const later = 1000 + limits.ingressFailedUpstreamMs;
    const firsts = new Set<string>();
    for (let round = 0; round < 50; round++) {
      const order = attemptOrder([up("a"), up("b"), up("c")], stats, later, () => random.next());
      firsts.add(order[0]?.taskId ?? "");
    }
    assert.ok(firsts.has("a"), "a recovers once the failure is old");
  });

  it("balances remote upstreams by the power of two choices on open connections", () => {
    const upstreams = [up("busy"), up("idle"), up("mid")];
    const open = new Map([
      [upstreamKey(up("busy")), 10],
      [upstreamKey(up("idle")), 0],
      [upstreamKey(up("mid")), 5],
    ]);
    const random = new SeededRandom(3);
    const firsts = new Map<string, number>();
    for (let round = 0; round < 300; round++) {
      const order = attemptOrder(upstreams, { open, failedAtMs: new Map() }, 0, () =>
        random.next(),
      );
      const first = order[0]?.taskId ?? "";
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
      assert.equal(new Set(order.map((u) => u.taskId)).size, order.length, "no upstream twice");
    }
    // Two of three drawn: the busiest never wins a draw, the idlest wins every draw it is in.
    assert.equal(firsts.get("busy") ?? 0, 0);
    assert.ok((firsts.get("idle") ?? 0) > (firsts.get("mid") ?? 0));
  });
});

describe("HTTP routes", () => {
  const listener = {
    port: 80,
    protocol: "http" as const,
    routes: [
      { service: "a", hosts: ["a.home.arpa"], proxyProtocol: null, upstreams: [] },
      { service: "all", hosts: [], proxyProtocol: null, upstreams: [] },
    ],
  };

  it("go by Host, without its port and whatever its case, and fall back to a route for all", () => {
    assert.equal(routeFor(listener, "A.Home.Arpa:80")?.service, "a");
    assert.equal(routeFor(listener, "b.home.arpa")?.service, "all");
    assert.equal(routeFor(listener, undefined)?.service, "all");
    assert.equal(routeFor({ ...listener, routes: [listener.routes[0]!] }, "b"), null);
    assert.equal(hostName("[::1]:8080"), "[::1]");
  });
});

describe("what makes the table be read again", () => {
  const entry = (type: string, ok = true, ingress?: unknown[]) => ({
    command: { type, ingress },
    result: { ok },
  });

  it("is a service written with ingress, or once a port is open a service's, task's or node's change; never a refusal", () => {
    assert.equal(changesIngress(entry("service.update", true, [{}]), false), true);
    assert.equal(changesIngress(entry("service.update", true, []), false), false);
    assert.equal(changesIngress(entry("service.delete"), false), false);
    assert.equal(changesIngress(entry("service.delete"), true), true);
    assert.equal(changesIngress(entry("task.report"), false), false);
    assert.equal(changesIngress(entry("task.report"), true), true);
    assert.equal(changesIngress(entry("node.down"), true), true);
    assert.equal(changesIngress(entry("node.ingress"), true), false);
    assert.equal(changesIngress(entry("service.create", false), true), false);
  });
});
