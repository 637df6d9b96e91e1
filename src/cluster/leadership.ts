// Leadership has one door (Nomad's establishLeadership / revokeLeadership): every leader duty is
// started when this member gains the lease and stopped when it loses it, here and nowhere else.
// No duty asks "am I the leader" to decide whether to run.
import type { Logger } from "../core/logger.ts";
import type { LeadershipChange, MemberLog } from "./ports.ts";

/** A duty only the lease holder does: scheduling, judging liveness, keeping voters. */
export interface LeaderDuty {
  readonly name: string;
  /** Starts the duty for the lease held in `term`. */
  establish(term: number): void;
  /** Stops it: it proposes nothing more, and its timers are gone. */
  revoke(): void;
}

export class Leadership {
  private unsubscribe: (() => void) | null = null;
  /** The term of the lease the duties run under; null while they are stopped. */
  private establishedIn: number | null = null;

  constructor(
    private readonly log: Pick<MemberLog, "onLeadership">,
    private readonly duties: readonly LeaderDuty[],
    private readonly logger: Logger,
  ) {}

  /** Whether the leader duties run on this member now. */
  get leading(): boolean {
    return this.establishedIn !== null;
  }

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.log.onLeadership((change) => this.changed(change));
  }

  /** Stops listening; duties that run are revoked first. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.revoke();
  }

  private changed(change: LeadershipChange): void {
    if (!this.unsubscribe) return;
    if (change.leading) this.establish(change.term);
    else if (this.establishedIn === change.term) this.revoke();
  }

  private establish(term: number): void {
    if (this.establishedIn === term) return;
    this.revoke();
    this.establishedIn = term;
    for (const duty of this.duties) duty.establish(term);
    this.logger.info({ term, duties: this.duties.map((d) => d.name) }, "leadership established");
  }

  /** In reverse order of establishing: a later duty may lean on an earlier one. */
  private revoke(): void {
    const term = this.establishedIn;
    if (term === null) return;
    this.establishedIn = null;
    for (const duty of [...this.duties].reverse()) duty.revoke();
    this.logger.info({ term }, "leadership revoked");
  }
}
