// Snapshots travel in chunks: a state image may be far larger than any other peer request, so
// the sender posts it piece by piece to /internal/snapshot and the receiver assembles it in a
// file of its data dir, handing the core one whole snapshot message only at the end. A chunk
// out of order restarts nothing silently: it is refused, the sender gives up, and the leader's
// core sends the snapshot again after its retry interval.
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { raftLimits } from "../raft/raft-limits.ts";
import type { Message, SnapshotMessage } from "../raft/types.ts";
import { orNoSpace } from "./disk-space.ts";
import { decodeMessages, encodeMessages } from "./peer-codec.ts";

export const snapshotPath = "/internal/snapshot";

export const chunkSchema = z.strictObject({
  /** Names one transfer: the sender, term and index of the snapshot. */
  transfer: z.string().max(200),
  offset: z.number().int().nonnegative(),
  total: z.number().int().nonnegative().max(limits.snapshotBytesMax),
  data: z.string().max(Math.ceil((raftLimits.snapshotChunkBytes * 4) / 3) + 4),
  /** The snapshot message without its data, on the last chunk only. */
  message: z.unknown().nullable(),
});
export type SnapshotChunk = z.infer<typeof chunkSchema>;

/**
 * The chunks of one snapshot message, in order, each encoded only when asked for (an image may
 * be large); the last carries the message itself.
 */
export function* snapshotChunks(message: SnapshotMessage): Generator<SnapshotChunk> {
  const data = message.data ?? new Uint8Array(0);
  const transfer = `${message.from}-${message.term}-${message.snapshot.index}`;
  const size = raftLimits.snapshotChunkBytes;
  for (let offset = 0; offset === 0 || offset < data.byteLength; offset += size) {
    const part = data.subarray(offset, offset + size);
    const last = offset + size >= data.byteLength;
    yield {
      transfer,
      offset,
      total: data.byteLength,
      data: Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString("base64"),
      message: last ? JSON.parse(encodeMessages([{ ...message, data: null }])) : null,
    };
  }
}

/** Assembles incoming snapshots in `<data dir>/snapshot.incoming`, one transfer at a time. */
export class SnapshotAssembler {
  private transfer = "";
  private received = 0;

  constructor(private readonly dataDir: string) {
    // A transfer cut short by a restart is never resumed: its partial file goes.
    rmSync(join(dataDir, "snapshot.incoming"), { force: true });
  }

  private get path(): string {
    return join(this.dataDir, "snapshot.incoming");
  }

  /** Takes one chunk; returns the whole snapshot message after the last one, else null. */
  accept(body: unknown): Message | null {
    const chunk = chunkSchema.parse(body);
    if (chunk.offset === 0) this.begin(chunk.transfer);
    else if (chunk.transfer !== this.transfer || chunk.offset !== this.received) {
      throw new ShoalError(
        "E_CONFLICT",
        `snapshot chunk at ${chunk.offset} of ${chunk.transfer} does not follow ${this.received} of ${this.transfer || "nothing"}`,
      );
    }
    const bytes = Buffer.from(chunk.data, "base64");
    if (this.received + bytes.length > chunk.total) {
      throw new ShoalError("E_VALIDATION", "snapshot chunks exceed the announced size");
    }
    this.append(bytes);
    this.received += bytes.length;
    if (chunk.message === null) return null;
    return this.finish(chunk);
  }

  /**
   * A chunk the full disk refuses ends the transfer and frees what it took: the leader hears
   * E_NO_SPACE and sends the snapshot again later, from the start.
   */
  private append(bytes: Buffer): void {
    try {
      orNoSpace("receiving a snapshot", () => {
        const fd = openSync(this.path, "a");
        try {
          writeSync(fd, bytes);
        } finally {
          closeSync(fd);
        }
      });
    } catch (error) {
      this.begin("");
      throw error;
    }
  }

  private begin(transfer: string): void {
    rmSync(this.path, { force: true });
    this.transfer = transfer;
    this.received = 0;
  }

  private finish(chunk: SnapshotChunk): Message {
    const size = statSync(this.path).size;
    this.transfer = "";
    if (size !== chunk.total) {
      throw new ShoalError("E_VALIDATION", `snapshot has ${size} of ${chunk.total} bytes`);
    }
    const [message] = decodeMessages(chunk.message);
    if (message?.type !== "snapshot") {
      throw new ShoalError("E_VALIDATION", "the last snapshot chunk carries no snapshot message");
    }
    const data = new Uint8Array(readFileSync(this.path));
    rmSync(this.path, { force: true });
    return { ...message, data };
  }
}
