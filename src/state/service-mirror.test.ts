import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openDatabase } from "../adapters/libsql.ts";
import { fail } from "../core/errors.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import type { Command } from "./commands.ts";
import { allRows, type Database } from "./db.ts";
import { handlers, StateMachine } from "./machine.ts";
import { serviceFromRow } from "./rows.ts";
import { serviceMirrorTriggers } from "./service-mirror.ts";
import { container, register } from "./test-harness.ts";

function fresh(db: Database): unknown {
  return allRows(db, "SELECT * FROM services ORDER BY name").map(serviceFromRow);
}

/** Every way the state machine writes services: created, scaled, changed, failing, deleted. */
function steps(sm: StateMachine): (() => void)[] {
  const apply = (command: Command) => sm.apply(command, sm.appliedIndex() + 1);
  const other = { ...container, image: "shoal-test/busybox:2" };
  return [
    () =>
      apply({ type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] }),
    () =>
      apply({ type: "service.create", at: 4, name: "api", replicas: 2, containers: [container] }),
    () => apply({ type: "service.update", at: 5, name: "web", replicas: 3 }),
    () => apply({ type: "service.update", at: 6, name: "api", containers: [other] }),
    () => apply({ type: "service.rebalance", at: 7, name: "web" }),
    () => apply({ type: "service.delete", at: 8, name: "api" }),
    () => apply({ type: "service.create", at: 9, name: "aaa", replicas: 0, containers: [other] }),
  ];
}

function machine(): { db: Database; sm: StateMachine } {
  const db = openDatabase(":memory:", "NORMAL");
  const sm = new StateMachine(db);
  sm.apply({ type: "cluster.init", at: 1, clusterId: "c1", ...apiTokenFields("t") }, 1);
  sm.apply(register(2), 2);
  return { db, sm };
}

describe("services in memory", () => {
  it("reads as SQL does after every kind of write", () => {
    const { db, sm } = machine();
    for (const step of steps(sm)) {
      sm.view.services();
      step();
      assert.deepEqual(sm.view.services(), fresh(db));
    }
    assert.deepEqual(
      sm.view.services().map((s) => s.name),
      ["aaa", "web"],
    );
  });

  it("each trigger is needed: without one, the services read stale", () => {
    for (const trigger of serviceMirrorTriggers) {
      const { db, sm } = machine();
      sm.view.services();
      db.exec(`DROP TRIGGER temp.${trigger}`);
      const stale = steps(sm).some((step) => {
        step();
        return JSON.stringify(sm.view.services()) !== JSON.stringify(fresh(db));
      });
      assert.ok(stale, `without ${trigger} the mirror still matched`);
    }
  });

  it("forgets a write that was refused and rolled back", () => {
    const { db, sm } = machine();
    sm.apply(
      { type: "service.create", at: 3, name: "web", replicas: 1, containers: [container] },
      3,
    );
    const before = sm.view.services();
    const original = handlers["service.delete"];
    handlers["service.delete"] = (ctx, command) => {
      ctx.run("UPDATE services SET failure_streak = 99 WHERE name = ?", command.name);
      return fail("E_CONFLICT", "refused after writing");
    };
    try {
      assert.equal(sm.apply({ type: "service.delete", at: 4, name: "web" }, 4).ok, false);
    } finally {
      handlers["service.delete"] = original;
    }
    assert.deepEqual(sm.view.services(), before);
    assert.equal(sm.view.services()[0]?.failureStreak, 0);
    assert.deepEqual(sm.view.services(), fresh(db));
  });

  it("hands out frozen values, so no reader can change another's", () => {
    const { sm } = machine();
    steps(sm)[0]?.();
    const services = sm.view.services();
    assert.ok(Object.isFrozen(services));
    assert.ok(Object.isFrozen(services[0]?.placement));
    const first = services[0] as unknown as { replicas: number };
    assert.throws(() => {
      first.replicas = 9;
    }, TypeError);
  });

  it("gives the definitions services and tasks run, each once, by family and revision", () => {
    const { sm } = machine();
    for (const step of steps(sm)) step();
    const running = { family: "api", revision: 1 };
    const tasks = [{ taskDefinition: running }, { taskDefinition: running }];
    const definitions = sm.view.referencedTaskDefinitions(tasks as never);
    assert.deepEqual(
      definitions.map((d) => `${d.family}:${d.revision}`),
      ["aaa:1", "api:1", "web:1"],
    );
    assert.equal(definitions[1]?.containers[0]?.image, container.image);
  });
});
