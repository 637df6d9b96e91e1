import assert from "node:assert/strict";
import { totalmem } from "node:os";
import { describe, it } from "node:test";
import { hostUsageSchema } from "../cluster/heartbeats.ts";
import { hostUsage } from "./host-usage.ts";

describe("this machine's use", () => {
  it("is measured in the shape a leader takes from a heartbeat, stamped with the given time", () => {
    const usage = hostUsage(1_700_000_000_000);
    // What a node sends, the leader's schema must take: a figure it refused would drop the
    // heartbeat's usage on every beat.
    assert.deepEqual(hostUsageSchema.parse(usage), usage);
    assert.equal(usage.at, 1_700_000_000_000);
    assert.ok(usage.memoryFreeMb > 0, "some memory is free");
    assert.ok(usage.memoryFreeMb <= totalmem() / (1024 * 1024), "in MiB, not bytes");
  });
});
