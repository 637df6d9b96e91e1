// Engine health is reported once per change, and the passes back off while the engine is down.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import { EngineHealth, engineRetryDelayMs } from "./engine-health.ts";
import type { AgentReporter } from "./ports.ts";

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {} };
const down = new ShoalError("E_DOCKER_UNAVAILABLE", "engine unreachable");

function recorder(): AgentReporter & { engine: [boolean, string][]; failing: boolean } {
  return {
    engine: [],
    failing: false,
    async reportTasks() {},
    async reportEngine(ready, message) {
      if (this.failing) throw new Error("no leader");
      this.engine.push([ready, message]);
    },
  };
}

describe("engine health", () => {
  it("reports the engine down once and ready again once", async () => {
    const reporter = recorder();
    const health = new EngineHealth(reporter, quiet);
    await health.answers();
    await health.answers();
    await health.unreachable(down);
    await health.unreachable(down);
    await health.answers();
    assert.deepEqual(reporter.engine, [
      [true, ""],
      [false, "engine unreachable"],
      [true, ""],
    ]);
  });

  it("backs off from dockerRetryMsMin to dockerRetryMsMax, and starts over once it answers", async () => {
    const health = new EngineHealth(recorder(), quiet);
    const delays = [];
    for (let attempt = 0; attempt < 8; attempt++) delays.push(await health.unreachable(down));
    assert.equal(delays[0], limits.dockerRetryMsMin);
    assert.equal(delays[1], 2 * limits.dockerRetryMsMin);
    assert.equal(delays.at(-1), limits.dockerRetryMsMax);
    await health.answers();
    assert.equal(await health.unreachable(down), limits.dockerRetryMsMin);
    assert.equal(engineRetryDelayMs(1000), limits.dockerRetryMsMax);
  });

  it("tries a refused report again on the next pass", async () => {
    const reporter = recorder();
    const health = new EngineHealth(reporter, quiet);
    reporter.failing = true;
    await health.answers();
    reporter.failing = false;
    await health.answers();
    assert.deepEqual(reporter.engine, [[true, ""]]);
  });
});
