// The exit codes the agent has seen (from `die` events and inspections), kept because a container
// may be gone, or still listed as running, when the reconciler looks at it. Bounded: the oldest
// is forgotten first.
import { limits } from "../core/limits.ts";

export class ExitCodes {
  private readonly codes = new Map<string, number>();

  remember(containerId: string, exitCode: number): void {
    this.codes.set(containerId, exitCode);
    if (this.codes.size > limits.exitCodesRememberedMax) {
      const oldest = this.codes.keys().next().value;
      if (oldest !== undefined) this.codes.delete(oldest);
    }
  }

  forget(containerId: string): void {
    this.codes.delete(containerId);
  }

  has(containerId: string): boolean {
    return this.codes.has(containerId);
  }

  /** A read-only view for the task decision. */
  view(): ReadonlyMap<string, number> {
    return this.codes;
  }
}
