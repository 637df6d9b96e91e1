// The wire form of Raft messages between peers: JSON, with byte fields as base64. Incoming
// messages are validated (peers are authenticated, but a bug or a version skew must not crash).
import { z } from "zod";
import { ShoalError } from "../core/errors.ts";
import type { Message } from "../raft/types.ts";

const bytes = z.string().transform((text) => new Uint8Array(Buffer.from(text, "base64")));
const id = z.string().max(64);
const count = z.number().int().nonnegative();
const membership = z.object({ voters: z.array(id), learners: z.array(id) });
const entry = z.object({
  index: count,
  term: count,
  kind: z.enum(["noop", "command", "membership"]),
  data: bytes,
});
const base = { from: id, to: id, term: count };

const messageSchema = z.discriminatedUnion("type", [
  z.object({ ...base, type: z.literal("preVote"), lastLogIndex: count, lastLogTerm: count }),
  z.object({
    ...base,
    type: z.literal("vote"),
    lastLogIndex: count,
    lastLogTerm: count,
    transfer: z.boolean(),
  }),
  z.object({ ...base, type: z.enum(["preVoteResponse", "voteResponse"]), granted: z.boolean() }),
  z.object({
    ...base,
    type: z.literal("append"),
    prevIndex: count,
    prevTerm: count,
    entries: z.array(entry),
    commitIndex: count,
    round: count,
  }),
  z.object({
    ...base,
    type: z.literal("appendResponse"),
    success: z.boolean(),
    index: count,
    hintIndex: count,
    hintTerm: count,
    round: count,
  }),
  z.object({ ...base, type: z.literal("heartbeat"), commitIndex: count, round: count }),
  z.object({ ...base, type: z.literal("heartbeatResponse"), round: count }),
  z.object({ ...base, type: z.literal("timeoutNow") }),
  z.object({
    ...base,
    type: z.literal("snapshot"),
    snapshot: z.object({ index: count, term: count, membership }),
    data: bytes.nullable(),
    round: count,
  }),
]);

const batchSchema = z.object({ messages: z.array(messageSchema) });

function toBase64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
}

/** JSON for a batch of messages, byte fields in base64. */
export function encodeMessages(messages: readonly Message[]): string {
  // The byte fields are converted first: a replacer function would be called for every value.
  return JSON.stringify({ messages: messages.map(wireForm) });
}

function wireForm(message: Message): unknown {
  if (message.type === "append") {
    return {
      ...message,
      entries: message.entries.map((entry) => ({ ...entry, data: toBase64(entry.data) })),
    };
  }
  if (message.type === "snapshot") {
    return { ...message, data: message.data === null ? null : toBase64(message.data) };
  }
  return message;
}

export function decodeMessages(body: unknown): Message[] {
  const parsed = batchSchema.safeParse(body);
  if (!parsed.success) {
    throw new ShoalError(
      "E_VALIDATION",
      `bad peer message: ${parsed.error.issues[0]?.message ?? ""}`,
    );
  }
  return parsed.data.messages as Message[];
}

/** The messages in a peer's answer to a batch; an answer without any (`{"ok":true}`) has none. */
export function decodeAnswers(text: string): Message[] {
  const body = JSON.parse(text) as { messages?: unknown };
  return body.messages === undefined ? [] : decodeMessages(body);
}
