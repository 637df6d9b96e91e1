// What a node does as a member of its cluster, in one place: it registers itself and keeps its
// copies of the cluster's secrets, heartbeats to the leader, hears the others' heartbeats, and
// runs the leader duties while, and only while, it holds the lease.
import type { IdGenerator } from "../core/ids.ts";
import type { HostUsage } from "../core/types.ts";
import type { Command } from "../state/commands.ts";
import { Heartbeats } from "./heartbeats.ts";
import { Leadership } from "./leadership.ts";
import { HeartbeatSender, LivenessJudge } from "./liveness.ts";
import { Registration } from "./registration.ts";
import { SchedulerLoop } from "./scheduler-loop.ts";
import { VoterKeeper, type VoterKeeperOptions } from "./voter-keeper.ts";

export interface ClusterMemberOptions extends VoterKeeperOptions {
  newId: IdGenerator;
  /** The scheduler's tie-breaks: seeded, like everything random in shoal's decisions. */
  random: () => number;
  /** This node's registration, proposed once per start. */
  registration: () => Command;
  onApiToken: (sealed: string) => void;
  onJoinSecret: (sealed: string) => void;
  /** Sends this node's heartbeat, with its machine use, to the leader; rejects when unanswered. */
  sendHeartbeat: (leaderId: string) => Promise<void>;
}

export class ClusterMember {
  readonly heartbeats: Heartbeats;
  readonly leadership: Leadership;
  readonly registration: Registration;
  private readonly sender: HeartbeatSender;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly options: ClusterMemberOptions) {
    const { log, nodeId, timers, now, logger } = options;
    this.heartbeats = new Heartbeats(() => timers.monotonic());
    const heartbeats = this.heartbeats;
    this.leadership = new Leadership(
      log,
      [
        new VoterKeeper(options),
        new LivenessJudge({ log, nodeId, heartbeats, timers, now, logger }),
        new SchedulerLoop(options),
      ],
      logger,
    );
    this.registration = new Registration(options);
    this.sender = new HeartbeatSender({
      log,
      nodeId,
      heartbeats,
      leading: () => this.leadership.leading,
      send: options.sendHeartbeat,
      timers,
    });
  }

  /** Registration, secrets and leadership: what a node needs while it joins. */
  start(): void {
    this.unsubscribe ??= this.options.log.onApplied((entry) => this.heartbeats.heardIn(entry));
    this.registration.start();
    this.leadership.start();
  }

  /** Heartbeats to the leader, once the node runs. */
  startHeartbeats(): void {
    this.sender.start();
  }

  /** A heartbeat arrived from `nodeId` (a peer request to this node). */
  heard(nodeId: string, usage?: HostUsage): void {
    this.heartbeats.heardFrom(nodeId, usage);
  }

  /** How long this node has been cut off from the leader; null while it is not. */
  disconnectedMs(): number | null {
    return this.sender.disconnectedMs();
  }

  stop(): void {
    this.sender.stop();
    this.leadership.stop();
    this.registration.stop();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}
