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
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new AssertionError(`undecodable command: ${String(error)}`);
  }
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
    const command = decodeCommand(entry.data);
    const matches =
      command.kind === "put" ||
      (command.kind === "cas" && this.get(command.key) === command.expected) ||
      (command.kind === "fenced" &&
        (this.version(command.key) === command.version || !this.fencing));
    if (!matches) return { operation: command.operation, ok: false };
    this.values.set(command.key, command.value);
    this.versions.set(command.key, entry.index);
    return { operation: command.operation, ok: true };
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ appliedIndex: this.appliedIndex, rows: this.rows() }));
  }

  static restore(data: Uint8Array, fencing = true): KvMachine {
    const parsed = JSON.parse(decoder.decode(data)) as {
      appliedIndex: number;
      rows: [string, string, number][];
    };
    const machine = new KvMachine(fencing);
    machine.appliedIndex = parsed.appliedIndex;
    for (const [key, value, version] of parsed.rows) {
      machine.values.set(key, value);
      machine.versions.set(key, version);
    }
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
