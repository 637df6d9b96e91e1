import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { raftLimits } from "../raft/raft-limits.ts";
import type { SnapshotMessage } from "../raft/types.ts";
import { SnapshotAssembler, snapshotChunks } from "./snapshot-chunks.ts";

const dir = mkdtempSync(join(tmpdir(), "shoal-chunks-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function snapshot(size: number, index = 7): SnapshotMessage {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + index) % 251;
  return {
    type: "snapshot",
    from: "aaaaaa1",
    to: "bbbbbb2",
    term: 3,
    snapshot: { index, term: 2, membership: { voters: ["aaaaaa1"], learners: ["bbbbbb2"] } },
    data,
    round: 4,
  };
}

describe("snapshot chunks", () => {
  it("splits an image larger than a chunk and assembles the same message", () => {
    const message = snapshot(raftLimits.snapshotChunkBytes * 2 + 1000);
    const chunks = [...snapshotChunks(message)];
    assert.equal(chunks.length, 3);
    const assembler = new SnapshotAssembler(dir);
    assert.equal(assembler.accept(chunks[0]), null);
    assert.equal(assembler.accept(chunks[1]), null);
    const whole = assembler.accept(chunks[2]);
    assert.deepEqual(whole, message);
  });

  it("sends an empty image as one chunk", () => {
    const message = snapshot(0);
    const chunks = [...snapshotChunks(message)];
    assert.equal(chunks.length, 1);
    assert.deepEqual(new SnapshotAssembler(dir).accept(chunks[0]), message);
  });

  it("refuses a chunk out of order or from another transfer, and a short image", () => {
    const first = [...snapshotChunks(snapshot(raftLimits.snapshotChunkBytes * 2, 7))];
    const other = [...snapshotChunks(snapshot(raftLimits.snapshotChunkBytes * 2, 9))];
    const assembler = new SnapshotAssembler(dir);
    assembler.accept(first[0]);
    assert.throws(() => assembler.accept(other[1]), /does not follow/);
    assert.throws(() => new SnapshotAssembler(dir).accept(first[1]), /does not follow/);
    const lying = { ...first[1], offset: 0, total: raftLimits.snapshotChunkBytes * 3 };
    assert.throws(() => new SnapshotAssembler(dir).accept(lying), /bytes/);
  });
});
