// A cluster member over the room's twins, for the room's unit tests: node "a" of cluster "c1",
// registering itself, over a MemberLogTwin and ManualTimers; any option can be replaced.
import { ClusterMember, type ClusterMemberOptions } from "../cluster/member.ts";
import { register } from "../state/test-harness.ts";
import { apiTokenFields } from "./cluster-init.ts";
import type { ManualTimers } from "./manual-timers.ts";
import type { MemberLogTwin } from "./member-log-twin.ts";

export const silentLogger = { info() {}, warn() {}, error() {} };

export function twinMember(
  log: MemberLogTwin,
  timers: ManualTimers,
  overrides: Partial<ClusterMemberOptions> = {},
): ClusterMember {
  let ids = 0;
  return new ClusterMember({
    log,
    nodeId: "a",
    clusterId: "c1",
    now: () => 1_000_000 + timers.monotonic(),
    timers,
    newId: () => `id${ids++}`,
    random: () => 0.5,
    logger: silentLogger,
    registration: () => register(5, { id: "a", name: "a" }),
    newClusterSecrets: () => apiTokenFields("t"),
    onApiToken: () => {},
    onJoinSecret: () => {},
    sendHeartbeat: () => Promise.resolve(),
    ...overrides,
  });
}
