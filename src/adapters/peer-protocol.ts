// The peer kinds (`/internal/:kind`) and the shape of each one's answer. A member's answer is input
// like any other: mutual TLS proves who answered, this table what it may say. An answer of the
// wrong shape for its kind is refused, never handed on (Raft's own messages are checked, sender
// and addressee too, in peer-codec.ts and peer-sender.ts).
import { z } from "zod";
import { joinAnswerSchema } from "../cluster/admission.ts";
import { type ErrorCode, errorCodes } from "../core/errors.ts";

const count = z.number().int().nonnegative();
const id = z.string().max(64);
const code = z
  .string()
  .refine((value): value is ErrorCode => value in errorCodes, "an unknown error code");

const forwardedAnswer = z.union([
  z.object({ ok: z.literal(true), value: z.unknown(), appliedIndex: count }),
  z.object({ ok: z.literal(false), code, message: z.string().max(4096), appliedIndex: count }),
]);

const memberReport = z.object({
  id,
  role: z.string().max(32),
  term: count,
  leader: z.string().max(64),
  commitIndex: count,
  appliedIndex: count,
  leaseRemainingMs: z.number().nonnegative(),
  followers: z.array(z.object({ id, match: count })).max(1024),
});

const done = z.object({ ok: z.literal(true) });

/** Every peer kind a node calls with PeerClient, and what its answer must look like. */
export const peerAnswers = {
  heartbeat: done,
  propose: forwardedAnswer,
  "read-index": z.object({ index: count }),
  "lease-read": z.object({ index: count }),
  status: memberReport,
  join: joinAnswerSchema,
} as const;

export type PeerKind = keyof typeof peerAnswers;
export type PeerAnswer<K extends PeerKind> = z.infer<(typeof peerAnswers)[K]>;

export function isPeerKind(kind: string): kind is PeerKind {
  return kind in peerAnswers;
}
