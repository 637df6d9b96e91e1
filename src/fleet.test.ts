import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type ServerType, serve } from "@hono/node-server";
import { systemClock } from "./adapters/system-clock.ts";
import { createApi } from "./api/app.ts";
import { type Fleet, openFleet } from "./fleet.ts";
import { freePort, waitFor } from "./testing/agent-process.ts";

interface Member {
  id: string;
  port: number;
  fleet: Fleet | null;
  server: ServerType;
}

const silent = { info() {}, warn() {}, error() {} };
const dirs: string[] = [];
const members: Member[] = [];

async function member(id: string, token?: string, joinPorts: number[] = []): Promise<Member> {
  const dataDir = mkdtempSync(join(tmpdir(), `shoal-fleet-${id}-`));
  dirs.push(dataDir);
  const port = await freePort();
  const entry: Member = { id, port, fleet: null, server: undefined as unknown as ServerType };
  const api = createApi({
    nodeId: id,
    store: () => (entry.fleet ? { view: entry.fleet.log.view(), log: entry.fleet.log } : null),
    peer: () => entry.fleet?.peer ?? null,
    clock: systemClock,
    newId: () => `t${Date.now()}`,
    logger: silent,
  });
  entry.server = serve({ fetch: api.app.fetch, hostname: "127.0.0.1", port });
  members.push(entry);
  const facts = {
    arch: "amd64",
    os: "linux",
    cpus: 2,
    memoryMb: 1024,
    version: "test",
    labels: {},
  };
  const fleet = await openFleet({
    nodeId: id,
    dataDir,
    token,
    join: joinPorts.map((p) => `127.0.0.1:${p}`),
    finder: null,
    logger: silent,
    registration: { name: id, address: "127.0.0.1", port, ...facts },
  });
  entry.fleet = fleet;
  if (fleet.needsJoin) await fleet.join(AbortSignal.timeout(10_000));
  return entry;
}

after(() => {
  for (const m of members) {
    m.fleet?.close();
    m.server.close();
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };

describe("a fleet over HTTP on loopback", () => {
  it("bootstraps a cluster, admits a member with the token, and forwards its writes", async () => {
    const first = await member("aaaaaa1");
    const log = first.fleet?.log;
    assert.ok(log && first.fleet?.bootstrapped);
    await waitFor("a leader", async () => log.isLeader());
    const init = await log.propose({
      type: "cluster.init",
      at: 1,
      clusterId: first.fleet?.token.clusterId ?? "",
      apiToken: "api",
    });
    assert.equal(init.ok, true);
    const second = await member("bbbbbb2", first.fleet?.token.text, [first.port]);
    const joined = second.fleet?.log;
    assert.ok(joined);
    await waitFor("the member to receive the state", async () => joined.view().cluster() !== null);
    assert.deepEqual(log.status().membership.learners, ["bbbbbb2"]);
    const forwarded = await joined.propose({
      type: "service.create",
      at: 2,
      name: "web",
      replicas: 0,
      containers: [container],
    });
    assert.equal(forwarded.ok, true, JSON.stringify(forwarded));
    await waitFor(
      "the write on both",
      async () => joined.view().service("web") !== null && log.view().service("web") !== null,
    );
  });

  it("refuses unsigned peer requests and joins with a wrong token, changing nothing", async () => {
    const [first] = members;
    assert.ok(first?.fleet);
    const before = first.fleet.log.view().appliedIndex();
    const unsigned = await fetch(`http://127.0.0.1:${first.port}/internal/raft`, {
      method: "POST",
      body: "{}",
    });
    assert.equal(unsigned.status, 401);
    const wrongToken = `shoal1.${first.fleet.token.clusterId}.notthesecret`;
    await assert.rejects(member("cccccc3", wrongToken, [first.port]), /refused this node's token/);
    assert.equal(first.fleet.log.view().appliedIndex(), before);
    assert.equal(first.fleet.log.view().nodeById("cccccc3"), null);
  });
});
