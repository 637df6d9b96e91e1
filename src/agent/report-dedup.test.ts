// A report is sent only when it says something new, against the last one sent or the store.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Logger } from "../core/logger.ts";
import type { TaskReport } from "../core/types.ts";
import { task } from "../scheduler/test-harness.ts";
import type { AgentReporter } from "./ports.ts";
import { ReportDedup } from "./report-dedup.ts";

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {} };

function recorder(): AgentReporter & { sent: TaskReport[]; failing: boolean } {
  return {
    sent: [],
    failing: false,
    async reportTasks(reports) {
      if (this.failing) throw new Error("no leader");
      this.sent.push(...reports);
    },
    async reportEngine() {},
  };
}

const t1 = task("t1", "web", "n1", { state: "starting" });
const report = (state: TaskReport["state"], reason = ""): TaskReport => ({
  taskId: "t1",
  node: "n1",
  state,
  reason,
  exitCode: null,
  containers: [],
});

describe("report de-duplication", () => {
  it("sends nothing the store already holds, and each change once", async () => {
    const reporter = recorder();
    const reports = new ReportDedup("n1", reporter, quiet);
    assert.equal(await reports.send(t1, report("starting")), true);
    assert.equal(reports.lastState("t1"), null, "nothing sent yet");
    assert.equal(await reports.send(t1, report("running")), true);
    assert.equal(await reports.send(t1, report("running")), true);
    assert.deepEqual(
      reporter.sent.map((r) => r.state),
      ["running"],
    );
    assert.equal(reports.lastState("t1"), "running");
  });

  it("says false for a refused report and sends it again next time", async () => {
    const reporter = recorder();
    const reports = new ReportDedup("n1", reporter, quiet);
    reporter.failing = true;
    assert.equal(await reports.send(t1, report("running")), false);
    reporter.failing = false;
    assert.equal(await reports.send(t1, report("running")), true);
    assert.equal(reporter.sent.length, 1);
  });

  it("forgets the tasks a pass no longer saw", async () => {
    const reports = new ReportDedup("n1", recorder(), quiet);
    await reports.send(t1, report("running"));
    reports.keepOnly(new Set(["t2"]));
    assert.equal(reports.lastState("t1"), null);
  });
});
