// On every node, each `memberDutyIntervalMs`: register this node once per start (its address or
// facts may have changed), and write this node's copies of the cluster's API token and join
// secret again whenever the store holds newer ones (a rotation, or a new cluster's row).
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { Command } from "../state/commands.ts";
import type { MemberLog } from "./ports.ts";
import { Rounds } from "./rounds.ts";

export interface RegistrationOptions {
  log: Pick<MemberLog, "view" | "propose">;
  /** This node's registration, proposed until it is applied once. */
  registration: () => Command;
  /** Called with the sealed API token whenever this node's api.token may be missing or stale. */
  onApiToken: (sealed: string) => void;
  /** Called with the sealed join secret whenever this node's join.token may be stale. */
  onJoinSecret: (sealed: string) => void;
  timers: Timers;
  logger: Logger;
}

export class Registration {
  private readonly rounds: Rounds;
  private registered = false;
  private apiToken = "";
  private joinSecret = "";

  constructor(private readonly options: RegistrationOptions) {
    this.rounds = new Rounds(
      options.timers,
      limits.memberDutyIntervalMs,
      () => this.keep(),
      (error) => options.logger.warn({ err: error }, "registering this node failed; retrying"),
    );
  }

  start(): void {
    this.rounds.start();
  }

  stop(): void {
    this.rounds.stop();
  }

  /** Whether this start's registration has been applied. */
  get isRegistered(): boolean {
    return this.registered;
  }

  /** One round now (a starting node asks while it waits for its registration). */
  round(): Promise<void> {
    return this.rounds.round();
  }

  private async keep(): Promise<void> {
    if (!this.registered) await this.register();
    this.keepSecrets();
  }

  private async register(): Promise<void> {
    // Before the cluster row exists (a new cluster's first moments) there is nothing to join.
    if (!this.options.log.view().cluster()) return;
    const result = await this.options.log.propose(this.options.registration());
    if (result.ok) this.registered = true;
  }

  /** Writes this node's api.token and join.token again once a rotation has been applied. */
  private keepSecrets(): void {
    const cluster = this.options.log.view().cluster();
    if (!cluster) return;
    if (cluster.apiTokenSealed && cluster.apiTokenSealed !== this.apiToken) {
      this.options.onApiToken(cluster.apiTokenSealed);
      this.apiToken = cluster.apiTokenSealed;
    }
    if (cluster.joinSecretSealed && cluster.joinSecretSealed !== this.joinSecret) {
      this.options.onJoinSecret(cluster.joinSecretSealed);
      this.joinSecret = cluster.joinSecretSealed;
    }
  }
}
