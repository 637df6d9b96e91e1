import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openDatabase } from "../adapters/libsql.ts";
import { fail } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import type { Command } from "./commands.ts";
import { handlers, StateMachine } from "./machine.ts";
import { container, register } from "./test-harness.ts";

function machine(): {
  sm: StateMachine;
  apply: (command: Command) => ReturnType<StateMachine["apply"]>;
} {
  const sm = new StateMachine(openDatabase(":memory:", "NORMAL"));
  return { sm, apply: (command) => sm.apply(command, sm.appliedIndex() + 1) };
}

function dump(sm: StateMachine): string {
  const v = sm.view;
  return JSON.stringify([
    v.cluster(),
    v.nodes(),
    v.services(),
    v.taskDefinitions(),
    v.tasks(),
    v.events(),
  ]);
}

function withNodeAndService(apply: ReturnType<typeof machine>["apply"]): void {
  apply({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") });
  apply(register(2));
  apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] });
}

function placeOne(
  sm: StateMachine,
  apply: ReturnType<typeof machine>["apply"],
  id: string,
  at: number,
): void {
  const service = sm.view.service("web");
  assert.ok(service);
  const result = apply({
    type: "plan.apply",
    at,
    plan: {
      create: [{ id, service: "web", taskDefinition: service.taskDefinition, node: "n1" }],
      assign: [],
      stop: [],
      events: [],
      completeDeployments: [],
      rebalanced: [],
      reads: { services: { web: service.version }, tasks: {}, nodes: {} },
    },
  });
  assert.ok(result.ok);
}

describe("state machine", () => {
  it("refuses a duplicate service name and changes nothing but the applied index", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    const before = dump(sm);
    const result = apply({
      type: "service.create",
      at: 9,
      name: "web",
      replicas: 5,
      containers: [container],
    });
    assert.equal(result.ok, false);
    assert.equal(result.ok ? "" : result.code, "E_CONFLICT");
    assert.equal(dump(sm), before);
    assert.equal(sm.appliedIndex(), 4);
  });

  it("refuses a plan read from rows that changed since (fencing)", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    const stale = sm.view.service("web");
    assert.ok(stale);
    placeOne(sm, apply, "t1", 4);
    const before = dump(sm);
    const result = apply({
      type: "plan.apply",
      at: 5,
      plan: {
        create: [{ id: "t2", service: "web", taskDefinition: stale.taskDefinition, node: "n1" }],
        assign: [],
        stop: [],
        events: [],
        completeDeployments: [],
        rebalanced: [],
        reads: { services: { web: stale.version }, tasks: {}, nodes: {} },
      },
    });
    assert.equal(result.ok, false);
    assert.equal(dump(sm), before);
    assert.equal(sm.view.tasks({ service: "web" }).length, 1);
  });

  it("moves a task forward only, and a failure stops it and counts towards backoff", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    const base = { taskId: "t1", node: "n1", reason: "", exitCode: null, containers: [] };
    apply({ type: "task.report", at: 5, reports: [{ ...base, state: "running" }] });
    apply({ type: "task.report", at: 6, reports: [{ ...base, state: "starting" }] });
    assert.equal(sm.view.task("t1")?.state, "running");
    apply({
      type: "task.report",
      at: 7,
      reports: [
        { ...base, state: "failed", reason: "container httpd exited with code 137", exitCode: 137 },
      ],
    });
    const task = sm.view.task("t1");
    assert.equal(task?.state, "failed");
    assert.equal(task?.desired, "stopped");
    assert.equal(task?.exitCode, 137);
    assert.equal(sm.view.service("web")?.failureStreak, 1);
    assert.equal(sm.view.service("web")?.lastFailureAt, 7);
    const types = sm.view.events().map((e) => e.type);
    assert.ok(types.includes("task.running") && types.includes("task.failed"));
  });

  it("ignores reports from a node the task is not on", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    apply({
      type: "task.report",
      at: 5,
      reports: [
        { taskId: "t1", node: "other", state: "failed", reason: "x", exitCode: 1, containers: [] },
      ],
    });
    assert.equal(sm.view.task("t1")?.state, "pending");
  });

  it("registers a new revision when containers change and starts a deployment to it", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    apply({
      type: "service.update",
      at: 5,
      name: "web",
      containers: [{ ...container, env: { A: "1" } }],
    });
    assert.equal(sm.view.service("web")?.taskDefinition.revision, 2);
    // The old task runs on: the scheduler replaces it within the deployment's bounds.
    assert.equal(sm.view.task("t1")?.desired, "running");
    assert.deepEqual(
      sm.view.taskDefinitions("web").map((d) => d.revision),
      [1, 2],
    );
    assert.deepEqual(
      sm.view.deployments("web").map((d) => [d.fromRevision, d.toRevision, d.status]),
      [
        [1, 2, "in_progress"],
        [null, 1, "superseded"],
      ],
    );
  });

  it("crashes on an entry applied out of order", () => {
    const { sm } = machine();
    assert.throws(() =>
      sm.apply({ type: "cluster.init", at: 1, clusterId: "c", ...apiTokenFields("t") }, 2),
    );
  });

  it("gives a second node under a taken name a suffix", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    apply(register(9, { id: "n2", address: "10.0.0.2" }));
    assert.deepEqual(
      sm.view.nodes().map((n) => n.name),
      ["pi", "pi-2"],
    );
  });

  it("keeps the revision when containers are unchanged, and scaling keeps the failure streak", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    const base = { taskId: "t1", node: "n1", reason: "", exitCode: null, containers: [] };
    apply({ type: "task.report", at: 5, reports: [{ ...base, state: "failed", exitCode: 1 }] });
    apply({ type: "service.update", at: 6, name: "web", containers: [container], replicas: 2 });
    const service = sm.view.service("web");
    assert.equal(service?.taskDefinition.revision, 1);
    assert.equal(service?.failureStreak, 1);
    apply({
      type: "service.update",
      at: 7,
      name: "web",
      containers: [{ ...container, image: "other" }],
    });
    assert.equal(sm.view.service("web")?.failureStreak, 0);
  });

  it("does not count the failure of a task already asked to stop", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    apply({ type: "task.stop", at: 5, taskId: "t1", reason: "scaled down" });
    assert.equal(sm.view.task("t1")?.state, "pending", "a placed task waits for its agent");
    const base = { taskId: "t1", node: "n1", reason: "", exitCode: 137, containers: [] };
    apply({ type: "task.report", at: 6, reports: [{ ...base, state: "failed" }] });
    assert.equal(sm.view.service("web")?.failureStreak, 0);
  });
});

describe("a node that leaves", () => {
  it("stops its tasks, stays left when it merely registers again, and returns by rejoining", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 10);
    assert.equal(apply({ type: "node.leave", at: 15, nodeId: "n1" }).ok, true);
    assert.equal(sm.view.nodeById("n1")?.status, "left");
    const task = sm.view.task("t1");
    assert.equal(task?.desired, "stopped");
    assert.equal(task?.state, "lost");
    assert.equal(apply(register(20)).ok, true);
    assert.equal(sm.view.nodeById("n1")?.status, "left");
    assert.equal(apply(register(21, { rejoin: true })).ok, true);
    assert.equal(sm.view.nodeById("n1")?.status, "ready");
    assert.equal(apply({ type: "node.leave", at: 30, nodeId: "nobody" }).ok, false);
  });
});

describe("a node judged down", () => {
  it("is marked down with its tasks lost, and comes back ready", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    const judged = sm.view.nodeById("n1");
    assert.ok(judged);
    const down = apply({
      type: "node.down",
      at: 5,
      nodeId: "n1",
      rowVersion: judged.rowVersion,
      silentMs: 3200,
    });
    assert.deepEqual(down, { ok: true, value: { id: "n1", name: "pi", lost: 1 } });
    assert.equal(sm.view.nodeById("n1")?.status, "down");
    const task = sm.view.task("t1");
    assert.equal(task?.state, "lost");
    assert.equal(task?.desired, "stopped");
    assert.match(task?.reason ?? "", /went silent for 3\.2 s/);
    const back = sm.view.nodeById("n1");
    assert.ok(back);
    assert.equal(
      apply({ type: "node.up", at: 6, nodeId: "n1", rowVersion: back.rowVersion }).ok,
      true,
    );
    assert.equal(sm.view.nodeById("n1")?.status, "ready");
  });

  it("refuses a judgement on a row that changed since it was read, changing nothing", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    placeOne(sm, apply, "t1", 4);
    const judged = sm.view.nodeById("n1");
    assert.ok(judged);
    apply({ type: "node.engine", at: 5, nodeId: "n1", ready: true, message: "" });
    const before = dump(sm);
    const stale = { nodeId: "n1", rowVersion: judged.rowVersion };
    const down = apply({ type: "node.down", at: 6, ...stale, silentMs: 3000 });
    assert.equal(down.ok ? "" : down.code, "E_CONFLICT");
    const up = apply({ type: "node.up", at: 7, ...stale });
    assert.equal(up.ok ? "" : up.code, "E_CONFLICT");
    assert.equal(dump(sm), before);
  });

  it("leaves a node that left as it is", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    apply({ type: "node.leave", at: 4, nodeId: "n1" });
    const left = sm.view.nodeById("n1");
    assert.ok(left);
    const down = { nodeId: "n1", rowVersion: left.rowVersion, silentMs: 5000 };
    assert.equal(apply({ type: "node.down", at: 5, ...down }).ok, true);
    assert.equal(sm.view.nodeById("n1")?.status, "left");
    assert.equal(sm.view.nodeById("n1")?.rowVersion, left.rowVersion);
  });
});

describe("resent requests", () => {
  it("applies a command resent under the same request id once, answering with the first result", () => {
    const db = openDatabase(":memory:", "NORMAL");
    const sm = new StateMachine(db);
    const apply = (command: Command) => sm.apply(command, sm.appliedIndex() + 1);
    withNodeAndService(apply);
    const run = { type: "task.run" as const, at: 5, taskId: "t9", family: "web", revision: 1 };
    const first = sm.applyAll([
      { index: sm.appliedIndex() + 1, command: run, requestId: "req00001" },
    ]);
    const tasksAfterFirst = JSON.stringify(sm.view.tasks());
    const again = sm.applyAll([
      { index: sm.appliedIndex() + 1, command: { ...run, taskId: "t10" }, requestId: "req00001" },
    ]);
    assert.deepEqual(again, first);
    assert.equal(JSON.stringify(sm.view.tasks()), tasksAfterFirst, "the resend changed nothing");
    const other = sm.applyAll([
      { index: sm.appliedIndex() + 1, command: { ...run, taskId: "t10" }, requestId: "req00002" },
    ]);
    assert.equal(other[0]?.ok, true);
    assert.equal(sm.view.tasks().length, 2);
  });

  it("still answers a resent request with its first result after the machine is opened again", () => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-requests-"));
    try {
      const path = join(dir, "state.db");
      const first = new StateMachine(openDatabase(path, "NORMAL"));
      withNodeAndService((command) => first.apply(command, first.appliedIndex() + 1));
      const scale = { type: "service.update" as const, at: 5, name: "web", replicas: 4 };
      const answered = first.applyAll([
        { index: first.appliedIndex() + 1, command: scale, requestId: "req00001" },
      ]);
      const reopened = new StateMachine(openDatabase(path, "NORMAL"));
      const again = reopened.applyAll([
        {
          index: reopened.appliedIndex() + 1,
          command: { ...scale, replicas: 9 },
          requestId: "req00001",
        },
      ]);
      assert.deepEqual(again, answered);
      assert.equal(reopened.view.service("web")?.replicas, 4, "the resend changed nothing");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("service updates", () => {
  it("tells the scheduler whether the count or the revision changed", () => {
    const { apply } = machine();
    withNodeAndService(apply);
    const rescheduled = (command: Command) =>
      (apply(command) as { value: { rescheduled: boolean } }).value.rescheduled;
    assert.equal(rescheduled({ type: "service.update", at: 4, name: "web", replicas: 1 }), false);
    assert.equal(rescheduled({ type: "service.update", at: 5, name: "web", replicas: 2 }), true);
    const same = [container];
    assert.equal(
      rescheduled({ type: "service.update", at: 6, name: "web", containers: same }),
      false,
    );
    const renamed = [{ ...container, image: "shoal-test/busybox:2" }];
    assert.equal(
      rescheduled({ type: "service.update", at: 7, name: "web", containers: renamed }),
      true,
    );
  });

  it("refuses an update of an unknown service and changes nothing", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    const before = dump(sm);
    const result = apply({ type: "service.update", at: 4, name: "nope", replicas: 3 });
    assert.equal(result.ok, false);
    assert.equal(result.ok ? "" : result.code, "E_NOT_FOUND");
    assert.equal(dump(sm), before);
  });
});

describe("a batch of commands", () => {
  it("undoes only the command that was refused after it wrote", () => {
    const { sm, apply } = machine();
    withNodeAndService(apply);
    const original = handlers["service.delete"];
    handlers["service.delete"] = (ctx, command) => {
      ctx.run("UPDATE services SET failure_streak = 99 WHERE name = ?", command.name);
      return fail("E_CONFLICT", "refused after writing");
    };
    try {
      const at = sm.appliedIndex();
      const results = sm.applyAll([
        { index: at + 1, command: { type: "service.update", at: 4, name: "web", replicas: 3 } },
        { index: at + 2, command: { type: "service.delete", at: 5, name: "web" } },
        { index: at + 3, command: { type: "service.update", at: 6, name: "web", replicas: 4 } },
      ]);
      assert.deepEqual(
        results.map((r) => r.ok),
        [true, false, true],
      );
      assert.equal(sm.view.service("web")?.failureStreak, 0, "the refused write was undone");
      assert.equal(sm.view.service("web")?.replicas, 4);
      assert.equal(sm.appliedIndex(), at + 3);
    } finally {
      handlers["service.delete"] = original;
    }
  });
});

describe("task definitions in memory", () => {
  it("keeps only committed revisions: one read inside a rolled-back transaction is not kept", () => {
    const db = openDatabase(":memory:", "NORMAL");
    const sm = new StateMachine(db);
    const insert = (image: string) =>
      db
        .prepare(
          "INSERT INTO task_definitions (family, revision, containers, created_at) VALUES ('f', 1, ?, 1)",
        )
        .run(JSON.stringify([{ ...container, image }]));
    db.exec("BEGIN");
    insert("rolled-back:1");
    assert.equal(sm.view.taskDefinition("f", 1)?.containers[0]?.image, "rolled-back:1");
    db.exec("ROLLBACK");
    insert("committed:1");
    assert.equal(sm.view.taskDefinition("f", 1)?.containers[0]?.image, "committed:1");
    assert.ok(Object.isFrozen(sm.view.taskDefinition("f", 1)?.containers[0]), "shared, so frozen");
  });
});

describe("history bounds", () => {
  it("keeps at most eventsRetainMax events (plus one pruning interval), the newest ones", () => {
    const db = openDatabase(":memory:", "NORMAL");
    const sm = new StateMachine(db);
    const apply = (command: Command) => sm.apply(command, sm.appliedIndex() + 1);
    withNodeAndService(apply);
    const writes = limits.eventsRetainMax + 3 * limits.pruneEveryEntries;
    for (let i = 0; i < writes; i++) {
      apply({ type: "service.update", at: 10 + i, name: "web", replicas: i % 3 });
    }
    const row = db
      .prepare("SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM events")
      .all()[0] as {
      n: number;
      lo: number;
      hi: number;
    };
    assert.ok(row.n <= limits.eventsRetainMax + limits.pruneEveryEntries, `${row.n} events kept`);
    assert.ok(row.n >= limits.eventsRetainMax, `${row.n} events kept`);
    assert.equal(row.hi, sm.view.lastEventSeq());
    assert.equal(row.hi - row.lo + 1, row.n, "the kept events are the newest, without gaps");
  });
});

describe("a node's disk", () => {
  const disk = (at: number, full: boolean) =>
    ({
      type: "node.disk",
      at,
      nodeId: "n1",
      full,
      freeBytes: full ? 512 * 1024 : 40 * 1024 * 1024,
      reserveBytes: 2 * 1024 * 1024,
    }) as const;
  const diskEvents = (sm: StateMachine) =>
    sm.view
      .events()
      .filter((event) => event.type.startsWith("node.disk"))
      .map((event) => event.type);

  it("records a change of the node's disk on its row and as one event, and a repeat as nothing", () => {
    const { sm, apply } = machine();
    apply(register(1));
    const before = sm.view.nodeById("n1");
    assert.equal(before?.diskFull, false);
    assert.equal(apply(disk(2, true)).ok, true);
    const full = sm.view.nodeById("n1");
    assert.equal(full?.diskFull, true);
    assert.ok((full?.rowVersion ?? 0) > (before?.rowVersion ?? 0), "fences plans read before");
    apply(disk(3, true));
    assert.equal(sm.view.nodeById("n1")?.rowVersion, full?.rowVersion, "a repeat changes nothing");
    apply(disk(4, false));
    assert.equal(sm.view.nodeById("n1")?.diskFull, false);
    assert.deepEqual(diskEvents(sm), ["node.disk_full", "node.disk_ok"]);
    assert.match(sm.view.events().at(-1)?.message ?? "", /^disk of node pi has room again/);
  });

  it("refuses the report of a node it does not know", () => {
    const { apply } = machine();
    const refused = apply(disk(1, true));
    assert.equal(refused.ok ? "" : refused.code, "E_NOT_FOUND");
  });
});
