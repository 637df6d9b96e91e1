// Stand-ins for the Raft host's snapshot images and state machine, for the pipeline's tests.
import type { Result } from "../core/errors.ts";
import type { HostSnapshotImages, HostStateMachine } from "../raft/host/ports.ts";
import type { Entry } from "../raft/types.ts";

/** Images of a host that takes none: nothing kept, nothing to read or install. */
export function noImages(): HostSnapshotImages {
  return {
    has: () => false,
    read: () => null,
    newestIndex: () => null,
    take: () => {},
    indexOf: () => null,
    writeReceived: () => {},
    installReceived: () => {},
    keepOnly: () => {},
  };
}

/** A state machine that appends what it applies to `applied`, answering each entry by `answer`. */
export function recordingMachine(
  applied: Entry[],
  answer: (entry: Entry) => Result<unknown> | null = () => null,
): HostStateMachine {
  return {
    appliedIndex: () => applied.at(-1)?.index ?? 0,
    applyAll: (entries) => {
      applied.push(...entries);
      return entries.map(answer);
    },
    restore: () => {},
  };
}
