// The Docker event stream's repairs, on fake engine streams: events split across chunks, a
// stream that ends silently, the reconnect with `since`, and the replayed duplicates dropped.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import type { RuntimeEvent } from "../agent/runtime.ts";
import { waitUntil } from "../testing/wait.ts";
import { DockerEventStream, parseEvent } from "./docker-events.ts";

const labels = { "shoal.cluster": "c1" };

function engineEvent(
  id: string,
  action: string,
  timeNano: number,
  attributes: Record<string, string> = {},
) {
  const Actor = { ID: id, Attributes: { ...labels, name: id, ...attributes } };
  return `${JSON.stringify({ Type: "container", Action: action, Actor, time: Math.floor(timeNano / 1e9), timeNano })}\n`;
}

function harness() {
  const streams: PassThrough[] = [];
  const sinces: (number | undefined)[] = [];
  const events: RuntimeEvent[] = [];
  const states: boolean[] = [];
  const stream = new DockerEventStream({
    labels,
    open: async (since) => {
      sinces.push(since);
      const next = new PassThrough();
      streams.push(next);
      return next;
    },
    handlers: { onEvent: (e) => events.push(e), onStreamState: (s) => states.push(s.connected) },
    describeError: (error) => String(error),
  });
  return { stream, streams, sinces, events, states };
}

describe("docker event stream", () => {
  it("parses events split across chunks and several in one chunk", async () => {
    const { stream, streams, events } = harness();
    stream.start();
    await waitUntil(() => streams.length === 1);
    const two =
      engineEvent("a", "start", 1e18) + engineEvent("a", "die", 1e18 + 1, { exitCode: "137" });
    streams[0]?.write(two.slice(0, 30));
    streams[0]?.write(two.slice(30));
    streams[0]?.write(engineEvent("a", "health_status: healthy", 1e18 + 2));
    await waitUntil(() => events.length === 3);
    assert.deepEqual(
      events.map((e) => [e.action, e.exitCode, e.health]),
      [
        ["start", null, null],
        ["die", 137, null],
        ["health_status", null, "healthy"],
      ],
    );
    assert.deepEqual(events[0]?.labels, labels);
    stream.close();
  });

  it("reconnects after a silent end with since before the last event and drops replays", async () => {
    const { stream, streams, sinces, events, states } = harness();
    stream.start();
    await waitUntil(() => streams.length === 1);
    streams[0]?.write(engineEvent("a", "start", 2_000_000_000e9));
    await waitUntil(() => events.length === 1);
    streams[0]?.end();
    await waitUntil(() => streams.length === 2, 2000);
    assert.deepEqual(sinces, [undefined, 1_999_999_999]);
    streams[1]?.write(engineEvent("a", "start", 2_000_000_000e9));
    streams[1]?.write(engineEvent("a", "die", 2_000_000_001e9, { exitCode: "1" }));
    await waitUntil(() => events.length === 2);
    assert.deepEqual(
      events.map((e) => e.action),
      ["start", "die"],
    );
    assert.deepEqual(states, [true, false, true]);
    stream.close();
  });

  it("calls no handler after close, and opens no new stream", async () => {
    const { stream, streams, events } = harness();
    stream.start();
    await waitUntil(() => streams.length === 1);
    stream.close();
    streams[0]?.write(engineEvent("a", "start", 1e18));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(events.length, 0);
    assert.equal(streams.length, 1);
  });

  it("ignores events of other kinds", () => {
    assert.equal(parseEvent({ Type: "network", Action: "connect", Actor: { ID: "x" } }), null);
    assert.equal(
      parseEvent({ Type: "container", Action: "exec_start: sh", Actor: { ID: "x" } }),
      null,
    );
  });
});
