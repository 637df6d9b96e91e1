// Gaining and losing the lease, as events: the host looks after every tick, step and finished
// batch, so a member's leader duties start the moment it may lead and stop within one tick of
// the lease's end (Nomad's establishLeadership / revokeLeadership hang off the same signal).

/** This member began to hold the lease in `term`, or stopped holding the lease it held in `term`. */
export type LeadershipChange = { leading: true; term: number } | { leading: false; term: number };

export class LeaseWatch {
  /** The term of the lease held when last observed; null while none is held. */
  private heldIn: number | null = null;
  private readonly listeners = new Set<(change: LeadershipChange) => void>();

  /** `deliver` runs a notice after the host's current turn: listeners never run inside a step. */
  constructor(private readonly deliver: (notice: () => void) => void) {}

  /** Whether this member held the lease when last observed. */
  get leading(): boolean {
    return this.heldIn !== null;
  }

  /** A listener that comes while the lease is held hears at once that it is held. */
  onChange(listener: (change: LeadershipChange) => void): () => void {
    this.listeners.add(listener);
    const term = this.heldIn;
    if (term !== null) this.deliver(() => listener({ leading: true, term }));
    return () => this.listeners.delete(listener);
  }

  /** The host's latest look: whether the lease is valid now, and the member's term. */
  observe(valid: boolean, term: number): void {
    const held = this.heldIn;
    if (valid ? held === term : held === null) return;
    this.heldIn = valid ? term : null;
    // A lease of an older term ends before the new one begins.
    if (held !== null) this.notify({ leading: false, term: held });
    if (valid) this.notify({ leading: true, term });
  }

  /** The host stops: a held lease ends with it. */
  close(): void {
    this.observe(false, 0);
  }

  private notify(change: LeadershipChange): void {
    for (const listener of this.listeners) this.deliver(() => listener(change));
  }
}
