// The simulator's state machine: a key-value register per key with put, compare-and-set and
// fenced writes, applied from committed log entries. Every key carries a version (the index of
// its last write); a fenced write carries the version its leader read and is refused when the
// key changed since, so a command derived from stale state changes nothing, however late it
// arrives. Deterministic; an undecodable command is a bug.
import { AssertionError, assert } from "../../core/assert.ts";
import type { Entry } from "../../raft/types.ts";
import { fnv1a } from "./trace-hash.ts";

export type KvCommand =
  | {
      readonly operation: number;
      readonly kind: "put";
      readonly key: string;
      readonly value: string;
    }
  | {
      readonly operation: number;
      readonly kind: "cas";
      readonly key: string;
      readonly expected: string | null;
      readonly value: string;
    }
  | {
      readonly operation: number;
      readonly kind: "fenced";
      readonly key: string;
      /** The key's version when the leader read it; 0 for a key never written. */
      readonly version: number;
      readonly value: string;
    };

export interface KvResult {
  readonly operation: number;
  readonly ok: boolean;
  /** A second copy of a forwarded request: answered with the first one's result, no change. */
  readonly duplicate: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/** A forwarded command is logged with its request id, so a resent copy applies once. */
export function encodeProposal(command: KvCommand, requestId: string | null): Uint8Array {
  if (requestId === null) return encodeCommand(command);
  return encoder.encode(JSON.stringify({ request: requestId, command }));
}

export function decodeProposal(data: Uint8Array): {
  command: KvCommand;
  requestId: string | null;
} {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new AssertionError(`undecodable command: ${String(error)}`);
  }
  const envelope = value as { request?: unknown; command?: unknown } | null;
  if (envelope !== null && typeof envelope.request === "string") {
    return { command: checkedCommand(envelope.command), requestId: envelope.request };
  }
  return { command: checkedCommand(value), requestId: null };
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return decodeProposal(data).command;
}

function checkedCommand(value: unknown): KvCommand {
  const command = value as Partial<KvCommand> | null;
  assert(
    command !== null && typeof command.operation === "number" && typeof command.key === "string",
    "command without operation or key",
  );
  assert(
    command.kind === "put" || command.kind === "cas" || command.kind === "fenced",
    `unknown command kind ${command.kind}`,
  );
  return command as KvCommand;
}

export class KvMachine {
  /** `fencing` false is a deliberate defect (fenced writes ignore versions), for tests only. */
  constructor(private readonly fencing = true) {}

  private values = new Map<string, string>();
  private versions = new Map<string, number>();
  /** The result of every forwarded request applied, by request id. */
  private requests = new Map<string, KvResult>();
  appliedIndex = 0;

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  version(key: string): number {
    return this.versions.get(key) ?? 0;
  }

  /** Applies one committed entry; commands return their result, other entries none. */
  apply(entry: Entry): KvResult | null {
    assert(
      entry.index === this.appliedIndex + 1,
      `applying ${entry.index} after ${this.appliedIndex}`,
    );
    this.appliedIndex = entry.index;
    if (entry.kind !== "command") return null;
    const { command, requestId } = decodeProposal(entry.data);
    const first = requestId === null ? undefined : this.requests.get(requestId);
    if (first !== undefined) return { ...first, duplicate: true };
    const result = this.execute(command, entry.index);
    if (requestId !== null) this.requests.set(requestId, result);
    return result;
  }

  private execute(command: KvCommand, index: number): KvResult {
    const matches =
      command.kind === "put" ||
      (command.kind === "cas" && this.get(command.key) === command.expected) ||
      (command.kind === "fenced" &&
        (this.version(command.key) === command.version || !this.fencing));
    if (!matches) return { operation: command.operation, ok: false, duplicate: false };
    this.values.set(command.key, command.value);
    this.versions.set(command.key, index);
    return { operation: command.operation, ok: true, duplicate: false };
  }

  snapshot(): Uint8Array {
    return encoder.encode(
      JSON.stringify({
        appliedIndex: this.appliedIndex,
        rows: this.rows(),
        requests: [...this.requests.entries()],
      }),
    );
  }

  static restore(data: Uint8Array, fencing = true): KvMachine {
    const parsed = JSON.parse(decoder.decode(data)) as {
      appliedIndex: number;
      rows: [string, string, number][];
      requests?: [string, KvResult][];
    };
    assert(Number.isInteger(parsed.appliedIndex), "an image without an applied index");
    const machine = new KvMachine(fencing);
    machine.appliedIndex = parsed.appliedIndex;
    for (const [key, value, version] of parsed.rows) {
      machine.values.set(key, value);
      machine.versions.set(key, version);
    }
    machine.requests = new Map(parsed.requests ?? []);
    return machine;
  }

  stateHash(): string {
    return fnv1a(JSON.stringify(this.rows())).toString(16);
  }

  private rows(): [string, string, number][] {
    return [...this.values.entries()]
      .sort(([left], [right]) => (left < right ? -1 : 1))
      .map(([key, value]) => [key, value, this.version(key)]);
  }
}
