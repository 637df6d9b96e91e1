// The host's side of "leader duties start within one lease and stop within one tick": three real
// pipelines over one virtual clock and a network a test can cut. A member hears it leads only
// once its lease is valid, and a leader cut off from its peers hears that its lease ended within
// one tick of the lease's expiry, from the host's ticks alone (nothing else reaches it).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { limits } from "../../core/limits.ts";
import { noImages, recordingMachine } from "../../testing/host-stubs.ts";
import { ManualTimers } from "../../testing/manual-timers.ts";
import type { LogStoreBatch } from "../log-store.ts";
import { MemoryLogStore } from "../memory-log-store.ts";
import { SeededRandom } from "../seeded-random.ts";
import type { Entry, Message } from "../types.ts";
import { RaftPipeline } from "./pipeline.ts";

const tickMs = limits.raftTickMs;

/** What a member heard of its lease, when, and whether its core held the lease then. */
interface Heard {
  at: number;
  leading: boolean;
  term: number;
  valid: boolean;
}

/** One member's host over a memory disk whose flushes finish in the next turn. */
function member(
  id: string,
  seed: number,
  timers: ManualTimers,
  send: (messages: readonly Message[]) => void,
) {
  const store = new MemoryLogStore();
  let unflushed: LogStoreBatch[] = [];
  const applied: Entry[] = [];
  return new RaftPipeline({
    core: {
      id,
      bootstrap: { voters: ["a", "b", "c"], learners: [] },
      random: new SeededRandom(seed),
    },
    state: store.load(),
    disk: {
      load: () => store.load(),
      write: (batch) => unflushed.push(batch),
      flush: (done) => {
        const batches = unflushed;
        unflushed = [];
        timers.soon(() => {
          for (const batch of batches) store.save(batch);
          done();
        });
      },
      close: () => {},
    },
    images: noImages(),
    machine: recordingMachine(applied),
    network: { send },
    timers,
    tickMs,
    waitingMax: 100,
    snapshotEntries: 0,
    diskFullRetryMs: 1000,
    fatal: (error) => {
      throw error;
    },
  });
}

/** Members a, b and c; a message crosses in the next turn unless its link is cut. */
function trio() {
  const timers = new ManualTimers();
  const cut = new Set<string>();
  const hosts = new Map<string, RaftPipeline>();
  const heard = new Map<string, Heard[]>();
  /** When each member's core was first seen holding the lease of a term, as "id@term". */
  const validSince = new Map<string, number>();
  for (const [seed, id] of ["a", "b", "c"].entries()) {
    // Each its own seed: members drawing the same election timeouts would split every vote.
    const host = member(id, seed + 1, timers, (messages) => {
      for (const message of messages) {
        if (cut.has(message.to) || cut.has(message.from)) continue;
        timers.soon(() => hosts.get(message.to)?.receive([message]));
      }
    });
    hosts.set(id, host);
    heard.set(id, []);
    host.onLeadership(({ leading, term }) => {
      const at = timers.monotonic();
      heard.get(id)?.push({ at, leading, term, valid: host.core.leaseValid(at) });
    });
  }
  /** Moves time a millisecond at a time, noting when each core's lease became valid. */
  const run = async (ms: number) => {
    for (let passed = 0; passed < ms; passed++) {
      await timers.advance(1, 1);
      for (const [id, host] of hosts) {
        const key = `${id}@${host.core.status().term}`;
        if (host.core.leaseValid(timers.monotonic()) && !validSince.has(key)) {
          validSince.set(key, timers.monotonic());
        }
      }
    }
  };
  const leader = () => {
    const leaders = [...hosts.values()].filter((h) => h.core.status().role === "leader");
    assert.equal(leaders.length, 1, "one leader");
    return leaders[0] as RaftPipeline;
  };
  return { timers, hosts, heard, validSince, run, leader, isolate: (id: string) => cut.add(id) };
}

type Trio = ReturnType<typeof trio>;

/** Every lease heard of was valid when heard, and heard within one tick of becoming valid. */
function assertGainsHeardInTime(room: Trio): void {
  for (const [id, events] of room.heard) {
    for (const gain of events.filter((event) => event.leading)) {
      const since = room.validSince.get(`${id}@${gain.term}`);
      assert.ok(gain.valid, `${id} heard it leads in ${gain.term} only with a valid lease`);
      assert.ok(since !== undefined && gain.at - since <= tickMs, `${id} heard in time`);
    }
  }
}

describe("the pipeline's lease events among three members", () => {
  it("tells an elected leader it leads once its lease is valid, and that the lease ended within one tick of its expiry when its peers fall silent", async () => {
    const room = trio();
    for (const host of room.hosts.values()) host.start();
    await room.run(2000);
    const leader = room.leader();
    const { id } = leader.core;
    const { term } = leader.core.status();
    assert.deepEqual(
      room.heard.get(id)?.map((e) => `${e.leading} ${e.term}`),
      [`true ${term}`],
    );
    assertGainsHeardInTime(room);

    room.isolate(id);
    // Nothing acknowledges a round from here: the lease ends when the last one's runs out.
    const expiry = leader.core.status().leaseExpiryMs;
    assert.ok(expiry > room.timers.monotonic(), "the lease still runs when the peers go silent");
    await room.run(1500);
    const lost = room.heard.get(id)?.find((event) => !event.leading);
    assert.ok(lost, "the isolated leader hears that its lease ended");
    assert.equal(lost.term, term);
    assert.equal(lost.valid, false);
    assert.ok(lost.at >= expiry && lost.at <= expiry + tickMs, `lost at ${lost.at}, ${expiry}`);

    // The other two elect a leader among themselves, which hears of its own lease in time.
    const others = [...room.heard].filter(([other]) => other !== id);
    const gains = others.flatMap(([, events]) => events.filter((event) => event.leading));
    assert.equal(gains.length, 1, "one of the others leads");
    assert.ok((gains[0]?.term ?? 0) > term);
    assertGainsHeardInTime(room);
    for (const host of room.hosts.values()) host.close();
  });
});
