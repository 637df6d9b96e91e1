// Image pulls beside the loop: one per image, their ends remembered, and aborted on demand.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/logger.ts";
import { MemoryRuntime } from "../testing/memory-runtime.ts";
import { waitUntil } from "../testing/wait.ts";
import { ImagePulls } from "./image-pulls.ts";

function setup(registry: string[]) {
  let nowMs = 100;
  const clock: Clock = { now: () => nowMs, monotonic: () => nowMs };
  const runtime = new MemoryRuntime({ images: [], registry });
  const logged: string[] = [];
  const logger: Logger = {
    info: (_fields, message) => logged.push(message ?? ""),
    warn: (_fields, message) => logged.push(message ?? ""),
    error: (_fields, message) => logged.push(message ?? ""),
  };
  let ended = 0;
  const pulls = new ImagePulls({ runtime, logger, clock, onEnded: () => ended++ });
  const advance = (ms: number) => {
    nowMs += ms;
  };
  return { runtime, pulls, logged, advance, ended: () => ended };
}

describe("image pulls", () => {
  it("pulls beside the caller, remembers when it ended, and says so", async () => {
    const { runtime, pulls, logged, advance, ended } = setup(["a:1"]);
    runtime.holdPulls();
    pulls.begin("t1", "a:1");
    assert.deepEqual([...pulls.inFlight()], ["a:1"]);
    advance(50);
    runtime.releasePulls();
    await waitUntil(() => ended() === 1);
    assert.deepEqual([...pulls.inFlight()], []);
    assert.equal(pulls.endings().get("a:1"), 150);
    assert.deepEqual(logged, ["pulling image a:1", "pulled image a:1"]);
    assert.ok(runtime.images.has("a:1"));
  });

  it("remembers a failed pull's end too", async () => {
    const { pulls, logged, ended } = setup([]);
    pulls.begin("t1", "nginx:alpine");
    await waitUntil(() => ended() === 1);
    assert.equal(pulls.endings().get("nginx:alpine"), 100);
    assert.match(logged.at(-1) ?? "", /^pull of image nginx:alpine failed: /);
  });

  it("aborts running pulls and records nothing of them", async () => {
    const { runtime, pulls } = setup(["a:1"]);
    runtime.holdPulls();
    pulls.begin("t1", "a:1");
    await pulls.abortAll();
    assert.equal(runtime.pullsWaiting, 0);
    assert.deepEqual([...pulls.endings()], []);
  });
});
