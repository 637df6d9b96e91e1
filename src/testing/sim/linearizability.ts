// A linearizability checker for a key-value register in the manner of Porcupine (Wing & Gong's
// search with a cache of visited states). Each key's history is checked on its own, which keeps
// it fast (P-compositionality). Operations whose outcome is unknown return at infinity: an
// unknown write may take effect at any point after its call or never; unknown reads say nothing.
export interface KvOperation {
  readonly id: number;
  readonly key: string;
  readonly kind: "write" | "cas" | "read";
  /** write and cas: the new value; read: the value read. */
  readonly value: string | null;
  /** cas only: the value it expects. */
  readonly expected: string | null;
  readonly callMs: number;
  /** Infinity when the outcome is unknown. */
  readonly returnMs: number;
  /** cas only: whether it succeeded; null when unknown. */
  readonly ok: boolean | null;
}

export type LinearizabilityVerdict =
  | { readonly kind: "linearizable" }
  | {
      readonly kind: "violation";
      readonly key: string;
      readonly operations: readonly KvOperation[];
    }
  /** No key violates, but the search ran out of its step budget on these keys: not a pass. */
  | { readonly kind: "inconclusive"; readonly keys: readonly string[] };

/**
 * The search's step budget, per key: each key's verdict then depends only on its own history, so
 * one hard key can neither starve the keys after it nor hide their violations, and the whole
 * check stays bounded by keys times this.
 */
export const searchStepsPerKeyMax = 2_000_000;

interface Node {
  readonly operation: number;
  readonly isCall: boolean;
  readonly timeMs: number;
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

type State = string | null;

function step(state: State, operation: KvOperation): { ok: boolean; state: State } {
  switch (operation.kind) {
    case "write":
      return { ok: true, state: operation.value };
    case "read":
      return { ok: state === operation.value, state };
    case "cas": {
      const matches = state === operation.expected;
      if (operation.ok === null || operation.ok === matches) {
        return { ok: true, state: matches ? operation.value : state };
      }
      return { ok: false, state };
    }
  }
}

/**
 * Checks every key: a violation on any key is the verdict; otherwise any key the search could not
 * decide within its budget makes the history inconclusive, which a run must count as a failure.
 */
export function checkHistory(
  operations: readonly KvOperation[],
  stepsPerKeyMax = searchStepsPerKeyMax,
): LinearizabilityVerdict {
  const inconclusive: string[] = [];
  for (const [key, list] of historiesByKey(operations)) {
    const verdict = checkKey(list, stepsPerKeyMax);
    if (verdict === "violation") return { kind: "violation", key, operations: list };
    if (verdict === "inconclusive") inconclusive.push(key);
  }
  if (inconclusive.length > 0) return { kind: "inconclusive", keys: inconclusive };
  return { kind: "linearizable" };
}

/** Why a run fails on this verdict; null only when the history is linearizable. */
export function verdictFailure(verdict: LinearizabilityVerdict): string | null {
  switch (verdict.kind) {
    case "linearizable":
      return null;
    case "violation":
      return `history of key ${verdict.key} is not linearizable`;
    case "inconclusive":
      return `search inconclusive within its step budget for keys ${verdict.keys.join(", ")}`;
  }
}

/** Each key's operations in history order, keys sorted; unknown reads say nothing and drop. */
function historiesByKey(operations: readonly KvOperation[]): [string, KvOperation[]][] {
  const byKey = new Map<string, KvOperation[]>();
  for (const operation of operations) {
    if (operation.kind === "read" && operation.returnMs === Number.POSITIVE_INFINITY) continue;
    const list = byKey.get(operation.key) ?? [];
    list.push(operation);
    byKey.set(operation.key, list);
  }
  return [...byKey.entries()].sort(([left], [right]) => (left < right ? -1 : 1));
}

function buildList(operations: readonly KvOperation[]): Node {
  const nodes: Node[] = [];
  operations.forEach((operation, position) => {
    const call: Node = {
      operation: position,
      isCall: true,
      timeMs: operation.callMs,
      match: null,
      prev: null,
      next: null,
    };
    const done: Node = {
      operation: position,
      isCall: false,
      timeMs: operation.returnMs,
      match: null,
      prev: null,
      next: null,
    };
    call.match = done;
    nodes.push(call, done);
  });
  // Calls sort before returns at the same instant: touching operations count as concurrent.
  nodes.sort(
    (left, right) => left.timeMs - right.timeMs || Number(right.isCall) - Number(left.isCall),
  );
  const head: Node = {
    operation: -1,
    isCall: false,
    timeMs: 0,
    match: null,
    prev: null,
    next: null,
  };
  let previous = head;
  for (const node of nodes) {
    previous.next = node;
    node.prev = previous;
    previous = node;
  }
  return head;
}

function lift(call: Node): void {
  const done = call.match as Node;
  (call.prev as Node).next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  (done.prev as Node).next = done.next;
  if (done.next !== null) done.next.prev = done.prev;
}

function unlift(call: Node): void {
  const done = call.match as Node;
  (done.prev as Node).next = done;
  if (done.next !== null) done.next.prev = done;
  (call.prev as Node).next = call;
  if (call.next !== null) call.next.prev = call;
}

function checkKey(
  operations: readonly KvOperation[],
  stepsMax: number,
): "linearizable" | "violation" | "inconclusive" {
  const head = buildList(operations);
  const linearized = new Uint32Array(Math.ceil(operations.length / 32) + 1);
  const seen = new Set<string>();
  const calls: { node: Node; state: State }[] = [];
  let state: State = null;
  let entry = head.next;
  for (let steps = 0; head.next !== null; steps++) {
    if (steps > stepsMax) return "inconclusive";
    if (entry === null) return "violation";
    if (entry.isCall) {
      const operation = operations[entry.operation] as KvOperation;
      const result = step(state, operation);
      if (result.ok) {
        toggle(linearized, entry.operation);
        const key = `${linearized.join(",")}|${result.state ?? "\u0000"}`;
        if (!seen.has(key)) {
          seen.add(key);
          calls.push({ node: entry, state });
          state = result.state;
          lift(entry);
          entry = head.next;
          continue;
        }
        toggle(linearized, entry.operation);
      }
      entry = entry.next;
      continue;
    }
    // A return whose call could not be placed: undo the last choice.
    const top = calls.pop();
    if (top === undefined) return "violation";
    state = top.state;
    toggle(linearized, top.node.operation);
    unlift(top.node);
    entry = top.node.next;
  }
  return "linearizable";
}

function toggle(bits: Uint32Array, position: number): void {
  const word = position >>> 5;
  bits[word] = ((bits[word] ?? 0) ^ (1 << (position & 31))) >>> 0;
}
