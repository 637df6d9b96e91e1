import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { register } from "../state/test-harness.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { silentLogger as silent, twinMember } from "../testing/cluster-room.ts";
import { ManualTimers } from "../testing/manual-timers.ts";
import { MemberLogTwin } from "../testing/member-log-twin.ts";
import { type LifecycleParts, type OpenedStore, startMember } from "./lifecycle.ts";

const clusterInit = {
  type: "cluster.init" as const,
  at: 1,
  clusterId: "c1",
  ...apiTokenFields("t"),
};

interface Setup {
  /** What the join does: by default the leader's replication brings the cluster's row. */
  join?: (log: MemberLogTwin) => Promise<void>;
  needsJoin?: boolean;
  leave?: boolean;
}

/** A lifecycle over the twin whose every part records when it is called. */
function lifecycle(setup: Setup = {}) {
  const timers = new ManualTimers();
  const log = new MemberLogTwin("a", timers);
  const steps: string[] = [];
  const store: OpenedStore = {
    log,
    needsJoin: setup.needsJoin ?? true,
    join: async () => {
      steps.push("join");
      await (setup.join ?? (async (twin) => void twin.applyCommitted(clusterInit)))(log);
    },
  };
  const parts: LifecycleParts<OpenedStore> = {
    nodeId: "a",
    open: async () => {
      steps.push("open");
      return store;
    },
    opened: () => steps.push("opened"),
    member: () => {
      steps.push("member");
      return twinMember(log, timers, {
        now: () => timers.monotonic(),
        registration: () => register(2, { id: "a", name: "a" }),
      });
    },
    run: () => {
      const registered = log.view().nodeById("a") !== null;
      steps.push(registered ? "run (registered)" : "run (not registered)");
      return { stop: async () => void steps.push("run stopped") };
    },
    close: async (opened) => void steps.push(opened ? "close store" : "close"),
    leave: setup.leave ?? false,
    timers,
    now: () => timers.monotonic(),
    logger: silent,
  };
  return { timers, log, steps, parts };
}

/** Runs `promise` to its end while virtual time passes. */
async function settled<T>(timers: ManualTimers, promise: Promise<T>): Promise<T> {
  const box: { outcome: { value: T } | { error: unknown } | null } = { outcome: null };
  promise.then(
    (value) => {
      box.outcome = { value };
    },
    (error: unknown) => {
      box.outcome = { error };
    },
  );
  for (let waited = 0; box.outcome === null && waited < 60_000; waited += 50) {
    await timers.advance(50);
  }
  const { outcome } = box;
  if (outcome === null) throw new Error("did not settle within a virtual minute");
  if ("error" in outcome) throw outcome.error;
  return outcome.value;
}

/** The twin leads voters a, b and c, with b and c just heard and matching as `matches` says. */
function leadThreeVoters(
  log: MemberLogTwin,
  timers: ManualTimers,
  matches: { b: number; c: number },
) {
  log.applyCommitted(clusterInit);
  log.membership = { voters: ["a", "b", "c"], learners: [] };
  log.lead(1);
  const lastHeardMs = timers.monotonic();
  log.followerList = Object.entries(matches).map(([id, match]) => ({
    id,
    match,
    state: "replicate" as const,
    lastHeardMs,
  }));
}

describe("a node's lifecycle", () => {
  it("opens, joins when it must, and runs once the cluster is known and the node registered", async () => {
    const { timers, log, steps, parts } = lifecycle();
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    assert.deepEqual(steps, ["open", "opened", "join", "member", "run (registered)"]);
    assert.equal(log.recorded("node.register").length, 1);
    await settled(timers, running.stop());
    assert.deepEqual(steps.slice(-2), ["run stopped", "close store"]);
    log.close();
  });

  it("waits for the cluster's row to arrive, then for its registration, before it runs", async () => {
    const { timers, log, steps, parts } = lifecycle({ join: async () => {} });
    // The leader's replication brings the row a moment after the join.
    timers.after(300, () => log.applyCommitted(clusterInit));
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    assert.equal(steps.at(-1), "run (registered)");
    await settled(timers, running.stop());
    log.close();
  });

  it("does not join a cluster it belongs to already", async () => {
    const { timers, log, steps, parts } = lifecycle({ needsJoin: false });
    log.applyCommitted(clusterInit);
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    assert.equal(steps.includes("join"), false);
    await settled(timers, running.stop());
    log.close();
  });

  it("closes what it opened when joining fails, and never runs", async () => {
    const refused = new ShoalError("E_UNAUTHORIZED", "cluster c1 refused this node's token");
    const { timers, log, steps, parts } = lifecycle({ join: () => Promise.reject(refused) });
    await assert.rejects(
      settled(timers, startMember(parts, new AbortController().signal)),
      (error) => error === refused,
    );
    assert.deepEqual(steps, ["open", "opened", "join", "close store"]);
    log.close();
  });

  it("stops waiting for the cluster when the node is stopped while joining", async () => {
    const { timers, log, steps, parts } = lifecycle({ join: async () => {} });
    const aborted = new AbortController();
    timers.after(200, () => aborted.abort());
    const started = settled(timers, startMember(parts, aborted.signal));
    await assert.rejects(started, /stopped before it knew its cluster/);
    assert.equal(steps.at(-1), "close store");
    log.close();
  });

  it("hands a stopping leader's lead to the most caught-up reachable voter, after its duties stop", async () => {
    const { timers, log, parts } = lifecycle({ needsJoin: false });
    leadThreeVoters(log, timers, { b: 5, c: 9 });
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    // Whether the leader duties still ran when the lead moved: a plan proposed after that would
    // be refused (E_NOT_LEADER), and the new leader plans for itself.
    const dutiesRan: boolean[] = [];
    const transfer = log.transferLeadership.bind(log);
    log.transferLeadership = (target: string) => {
      dutiesRan.push(running.member.leadership.leading);
      return transfer(target);
    };
    await settled(timers, running.stop());
    const transfers = log.records.filter((r) => r.what.startsWith("transfer"));
    assert.deepEqual(
      transfers.map(({ what, leading }) => ({ what, leading })),
      [{ what: "transfer c", leading: true }],
    );
    assert.deepEqual(dutiesRan, [false], "the duties stopped before the lead was handed over");
    log.close();
  });

  it("with --leave, proposes the node's leaving, and a leader hands over before it goes", async () => {
    const { timers, log, steps, parts } = lifecycle({ needsJoin: false, leave: true });
    leadThreeVoters(log, timers, { b: 9, c: 9 });
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    const before = timers.monotonic();
    await settled(timers, running.stop());
    const kinds = log.records.map((r) => r.what);
    const left = kinds.indexOf("node.leave");
    assert.ok(left >= 0, "the node proposed its leaving");
    assert.ok(
      kinds.slice(left).some((what) => what.startsWith("transfer")),
      "then handed over",
    );
    assert.ok(timers.monotonic() - before < limits.transferWaitMs, "without waiting out the wait");
    assert.equal(log.view().nodeById("a")?.status, "left");
    assert.deepEqual(steps.slice(-2), ["run stopped", "close store"]);
    log.close();
  });

  it("a stopping follower transfers nothing", async () => {
    const { timers, log, parts } = lifecycle({ needsJoin: false });
    log.applyCommitted(clusterInit);
    const running = await settled(timers, startMember(parts, new AbortController().signal));
    await settled(timers, running.stop());
    assert.equal(
      log.records.some((r) => r.what.startsWith("transfer")),
      false,
    );
    log.close();
  });
});
