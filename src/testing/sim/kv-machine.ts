// The simulator's state machine: a key-value register per key with put and compare-and-set,
// applied from committed log entries. Deterministic; an undecodable command is a bug.
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
  assert(command.kind === "put" || command.kind === "cas", `unknown command kind ${command.kind}`);
  return command as KvCommand;
}

export class KvMachine {
  private values = new Map<string, string>();
  appliedIndex = 0;

  get(key: string): string | null {
    return this.values.get(key) ?? null;
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
    if (command.kind === "put") {
      this.values.set(command.key, command.value);
      return { operation: command.operation, ok: true };
    }
    const current = this.values.get(command.key) ?? null;
    if (current !== command.expected) return { operation: command.operation, ok: false };
    this.values.set(command.key, command.value);
    return { operation: command.operation, ok: true };
  }

  snapshot(): Uint8Array {
    const pairs = [...this.values.entries()].sort(([left], [right]) => (left < right ? -1 : 1));
    return encoder.encode(JSON.stringify({ appliedIndex: this.appliedIndex, pairs }));
  }

  static restore(data: Uint8Array): KvMachine {
    const parsed = JSON.parse(decoder.decode(data)) as {
      appliedIndex: number;
      pairs: [string, string][];
    };
    const machine = new KvMachine();
    machine.appliedIndex = parsed.appliedIndex;
    machine.values = new Map(parsed.pairs);
    return machine;
  }

  stateHash(): string {
    const pairs = [...this.values.entries()].sort(([left], [right]) => (left < right ? -1 : 1));
    return fnv1a(JSON.stringify(pairs)).toString(16);
  }
}
