// A member that kept its node id and join token but lost raft.db comes back as main.ts starts a
// node (loadNodeIdentity, then openFleet): under a new id, admitted again as a learner, with its
// replica received from the leader rather than kept from its old state.db.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { type FleetMember, startFleetMember } from "../testing/fleet-member.ts";
import { waitFor } from "../testing/wait.ts";
import { loadNodeIdentity } from "./data-dir.ts";
import { type Fleet, openFleet } from "./fleet.ts";

const dirs: string[] = [];
const running = new Set<FleetMember<Fleet>>();
let idsMade = 0;

after(async () => {
  for (const member of running) await stop(member);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function stop(member: FleetMember<Fleet>): Promise<void> {
  await member.stop();
  running.delete(member);
}

/** Starts a member in `dataDir` as main.ts does; its id is whatever loadNodeIdentity says. */
async function start(dataDir: string, options: { token?: string; join?: number[] } = {}) {
  const id = loadNodeIdentity(dataDir, () => `node${String(++idsMade).padStart(3, "0")}`).id;
  const member = await startFleetMember({
    openFleet,
    id,
    dataDir,
    token: options.token,
    join: options.join,
  });
  running.add(member);
  return member;
}

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-amnesia-"));
  dirs.push(dir);
  return dir;
}

it("a member that lost raft.db rejoins under a new id as a learner, its replica received anew", async () => {
  const leader = await start(dataDir());
  const log = leader.fleet.log;
  await waitFor("a leader", async () => log.isLeader());
  const clusterId = leader.fleet.token.clusterId;
  assert.ok(
    (await log.propose({ type: "cluster.init", at: 1, clusterId, ...apiTokenFields("a") })).ok,
  );
  const memberDir = dataDir();
  const member = await start(memberDir, { token: leader.fleet.token.text, join: [leader.port] });
  const replica = member.fleet.log;
  await waitFor("the member's replica", async () => replica.view().cluster() !== null);
  assert.deepEqual(log.status().membership.learners, [member.id]);
  await stop(member);

  rmSync(join(memberDir, "raft.db"));
  // No --token: the kept join.token names the cluster, as on any restart.
  const again = await start(memberDir, { join: [leader.port] });
  assert.notEqual(again.id, member.id, "the node came back under the id it lost the votes of");
  await waitFor("the new member's replica", async () => again.fleet.log.view().cluster() !== null);
  assert.deepEqual([...log.status().membership.learners].sort(), [member.id, again.id].sort());
  await waitFor(
    "the new member to catch up",
    async () => again.fleet.log.view().appliedIndex() === log.view().appliedIndex(),
  );
});
