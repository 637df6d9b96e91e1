// The backoff of restarts while cut off, and what the agent remembers of them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { OfflineRestarts, offlineRestartWaitMs } from "./offline-restarts.ts";

describe("offline restarts", () => {
  it("restarts at once the first time, then backs off doubling up to offlineRestartMsMax", () => {
    assert.equal(offlineRestartWaitMs(null, 5000), 0);
    const min = limits.offlineRestartMsMin;
    assert.equal(offlineRestartWaitMs({ count: 1, lastMs: 5000 }, 5000), min);
    assert.equal(offlineRestartWaitMs({ count: 2, lastMs: 5000 }, 5000 + min), min);
    assert.ok(offlineRestartWaitMs({ count: 3, lastMs: 0 }, 4 * min) <= 0, "waited long enough");
    assert.equal(offlineRestartWaitMs({ count: 40, lastMs: 0 }, 0), limits.offlineRestartMsMax);
  });

  it("remembers restarts and stops per task, and forgets the tasks a pass no longer saw", () => {
    const restarts = new OfflineRestarts();
    restarts.record("t1", { count: 1, lastMs: 10 });
    restarts.markStopped("t2");
    assert.deepEqual(restarts.of("t1"), { count: 1, lastMs: 10 });
    assert.equal(restarts.stoppedHere("t2"), true);
    restarts.keepOnly(new Set(["t1"]));
    assert.deepEqual(restarts.of("t1"), { count: 1, lastMs: 10 });
    assert.equal(restarts.stoppedHere("t2"), false);
    restarts.keepOnly(new Set());
    assert.equal(restarts.of("t1"), null);
  });
});
