import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openDatabase } from "../adapters/libsql.ts";
import type { Ingress } from "../core/types.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import type { Command, CommandOf } from "./commands.ts";
import { StateMachine } from "./machine.ts";
import { serviceSpecSchema } from "./spec.ts";
import { container, register } from "./test-harness.ts";

function machine() {
  const sm = new StateMachine(openDatabase(":memory:", "NORMAL"));
  const apply = (command: Command) => sm.apply(command, sm.appliedIndex() + 1);
  apply({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") });
  apply(register(2));
  return { sm, apply };
}

/** A service.create command from a spec as a user writes it (decoded by the API's schema). */
function create(at: number, spec: Record<string, unknown>): CommandOf<"service.create"> {
  const parsed = serviceSpecSchema.parse({ containers: [container], ...spec });
  return { type: "service.create", at, ...parsed };
}

function dump(sm: StateMachine): string {
  const v = sm.view;
  return JSON.stringify([v.services(), v.taskDefinitions(), v.tasks()]);
}

function refusal(result: ReturnType<StateMachine["apply"]>): string {
  return result.ok ? "accepted" : `${result.code}: ${result.message}`;
}

const http = (port: number, hosts: string[]) => ({
  port,
  containerPort: 80,
  protocol: "http",
  hosts,
});

describe("ingress in the state machine", () => {
  it("keeps a service's ingress, resolves its container and publishes the container port", () => {
    const { sm, apply } = machine();
    const result = apply(create(3, { name: "web", ingress: [{ port: 8080, containerPort: 80 }] }));
    assert.ok(result.ok, refusal(result));
    const web = sm.view.service("web");
    const row = (i: Ingress) => [
      i.port,
      i.container,
      i.containerPort,
      i.protocol,
      i.hosts,
      i.proxyProtocol,
    ];
    assert.deepEqual(web?.ingress.map(row), [[8080, "httpd", 80, "tcp", [], null]]);
    assert.equal(web?.drainMs, 5000);
    const definition = sm.view.taskDefinition("web", 1);
    assert.deepEqual(definition?.containers[0]?.ports, [{ container: 80, protocol: "tcp" }]);
  });

  it("lets two HTTP services share a port with different hosts, and refuses overlaps", () => {
    const { sm, apply } = machine();
    assert.ok(apply(create(3, { name: "a", ingress: [http(8080, ["a.home.arpa"])] })).ok);
    assert.ok(apply(create(4, { name: "b", ingress: [http(8080, ["b.home.arpa"])] })).ok);
    const before = dump(sm);
    for (const [name, ingress] of [
      ["c", [http(8080, ["B.home.arpa"])]],
      ["d", [http(8080, [])]],
      ["e", [{ port: 8080, containerPort: 80 }]],
    ] as const) {
      const result = apply(create(5, { name, ingress }));
      assert.match(refusal(result), /^E_PORT_CONFLICT: ingress port 8080: service [ab] already/);
    }
    assert.equal(dump(sm), before);
  });

  it("refuses shoal's API port and a task's fixed host port, either way round", () => {
    const { sm, apply } = machine();
    const before = dump(sm);
    const onApi = apply(create(3, { name: "a", ingress: [{ port: 7420, containerPort: 80 }] }));
    assert.match(refusal(onApi), /^E_PORT_CONFLICT: .*API port on node pi/);
    const fixed = { ...container, ports: [{ container: 80, host: 9000, protocol: "tcp" }] };
    const own = apply(
      create(4, { name: "b", containers: [fixed], ingress: [{ port: 9000, containerPort: 80 }] }),
    );
    assert.match(refusal(own), /^E_PORT_CONFLICT: .*a container of the service publishes it/);
    assert.equal(dump(sm), before);

    assert.ok(apply(create(5, { name: "fixed", containers: [fixed] })).ok);
    const other = apply(create(6, { name: "c", ingress: [{ port: 9000, containerPort: 80 }] }));
    assert.match(refusal(other), /service fixed publishes it as a fixed host port/);

    assert.ok(apply(create(7, { name: "web", ingress: [{ port: 8080, containerPort: 80 }] })).ok);
    const onIngress = {
      ...container,
      ports: [{ container: 80, host: 8080, protocol: "tcp" as const }],
    };
    const clash = apply(create(8, { name: "d", containers: [onIngress] }));
    assert.match(refusal(clash), /host port 8080 is an ingress port of service web/);
    const run = apply({
      type: "task.run",
      at: 9,
      taskId: "t1",
      family: "run",
      containers: [onIngress],
    });
    assert.match(refusal(run), /^E_PORT_CONFLICT: host port 8080/);
  });

  it("refuses an ingress naming a container the task lacks, on create and on update", () => {
    const { sm, apply } = machine();
    const missing = apply(
      create(3, { name: "web", ingress: [{ port: 8080, container: "db", containerPort: 80 }] }),
    );
    assert.match(refusal(missing), /^E_VALIDATION: ingress 8080: the task has no container db/);
    assert.ok(apply(create(4, { name: "web", ingress: [{ port: 8080, containerPort: 80 }] })).ok);
    const before = dump(sm);
    const renamed = apply({
      type: "service.update",
      at: 5,
      name: "web",
      containers: [{ ...container, name: "other" }],
    });
    assert.match(refusal(renamed), /names container httpd, which the task no longer has/);
    assert.equal(dump(sm), before);
  });

  it("rolls out a new revision when an update's ingress needs a port published, not otherwise", () => {
    const { sm, apply } = machine();
    assert.ok(apply(create(3, { name: "web" })).ok);
    const drain = apply({ type: "service.update", at: 4, name: "web", drainMs: 100 });
    assert.ok(drain.ok);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 1);
    assert.equal(sm.view.service("web")?.drainMs, 100);
    const update = apply({
      type: "service.update",
      at: 5,
      name: "web",
      ingress: [{ port: 8080, containerPort: 80, protocol: "tcp", hosts: [] }],
    });
    assert.ok(update.ok, refusal(update));
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2);
    assert.equal(sm.view.deploymentInProgress("web")?.toRevision, 2);
    // The same containers sent again (without the published port) are no new revision.
    const again = apply({ type: "service.update", at: 6, name: "web", containers: [container] });
    assert.ok(again.ok);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2);
  });
});

describe("ingress and older revisions", () => {
  it("refuses a rollback to a revision that does not publish the ingress port", async () => {
    const { sm, apply } = machine();
    const fixed = {
      ...container,
      ports: [{ container: 81, host: 9000, protocol: "tcp" as const }],
    };
    assert.ok(apply(create(3, { name: "web", containers: [fixed] })).ok);
    const complete = apply({
      type: "plan.apply",
      at: 4,
      plan: {
        create: [],
        assign: [],
        stop: [],
        events: [],
        completeDeployments: ["web"],
        rebalanced: [],
        reads: { services: { web: sm.view.service("web")?.version ?? 0 }, tasks: {}, nodes: {} },
      },
    });
    assert.ok(complete.ok, refusal(complete));
    const ingress = [{ port: 8080, containerPort: 80, protocol: "tcp" as const, hosts: [] }];
    assert.ok(apply({ type: "service.update", at: 5, name: "web", ingress }).ok);
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2);
    const before = dump(sm);
    const back = apply({ type: "service.rollback", at: 6, name: "web" });
    assert.match(
      refusal(back),
      /^E_PORT_CONFLICT: ingress port 8080: container httpd does not publish port 80/,
    );
    assert.equal(dump(sm), before);
  });

  it("refuses a one-off task of a known definition whose fixed host port is an ingress port", () => {
    const { sm, apply } = machine();
    const fixed = {
      ...container,
      ports: [{ container: 80, host: 8080, protocol: "tcp" as const }],
    };
    assert.ok(
      apply({ type: "task.run", at: 3, taskId: "t1", family: "job", containers: [fixed] }).ok,
    );
    assert.ok(apply({ type: "task.stop", at: 4, taskId: "t1", reason: "done" }).ok);
    assert.ok(apply(create(5, { name: "web", ingress: [{ port: 8080, containerPort: 80 }] })).ok);
    const before = dump(sm);
    const again = apply({ type: "task.run", at: 6, taskId: "t2", family: "job", revision: 1 });
    assert.match(
      refusal(again),
      /^E_PORT_CONFLICT: host port 8080 is an ingress port of service web/,
    );
    assert.equal(dump(sm), before);
  });
});

describe("the ingress spec", () => {
  it("refuses hosts in tcp mode, a PROXY header in http mode and a port given twice", () => {
    const parse = (ingress: unknown[]) =>
      serviceSpecSchema.safeParse({ name: "web", containers: [container], ingress });
    assert.equal(parse([{ port: 80, containerPort: 80, hosts: ["a.b"] }]).success, false);
    const proxied = { port: 80, containerPort: 80, protocol: "http", proxyProtocol: "v2" };
    assert.equal(parse([proxied]).success, false);
    const twice = [
      { port: 80, containerPort: 80 },
      { port: 80, containerPort: 81 },
    ];
    assert.equal(parse(twice).success, false);
    assert.equal(parse([{ port: 80, containerPort: 80, hosts: [] }]).success, true);
    assert.equal(parse([{ port: 0, containerPort: 80 }]).success, false);
  });
});
