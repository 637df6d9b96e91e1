// A real fleet on the lab: agents in network namespaces, each with its own engine and data dir,
// finding each other over mDNS with no addresses given. Membership, snapshots, failover of the
// leader, a partitioned minority, and refused peers. Needs root, as the lab does.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { readTlsIdentity } from "../../src/adapters/tls-files.ts";
import { untrustedRequest } from "../../src/testing/https.ts";
import { labDataDir, nodeAddress } from "../../src/testing/lab.ts";
import { mdnsLab } from "../../src/testing/lab-fleet.ts";
import { TestCa } from "../../src/testing/test-ca.ts";
import { waitFor } from "../../src/testing/wait.ts";

const shoalBin = join(import.meta.dirname, "..", "..", "bin", "shoal");

const image = "shoal-test/busybox:1";
// A snapshot every 100 applied entries, so a node that joins late must receive one.
const lab = mdnsLab({ agentArgs: ["--snapshot-entries", "100"] });

interface ClusterView {
  id: string;
  leader: { id: string; name: string | null; address: string | null } | null;
  term: number;
  leaseHeld: boolean;
  voters: string[];
  learners: string[];
  members: { id: string; name: string | null; role: string; appliedIndex: number | null }[];
  answeredBy: string;
  appliedIndex: number;
  snapshotIndex: number;
  stateHash: string;
  nodes: { id: string; name: string; role: string | null; status: string }[];
}

interface Answer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

let joinToken = "";
let apiToken = "";

async function call(node: string, method: string, path: string, body?: unknown, timeoutMs = 8000) {
  const response = await lab.fetch(node, path, {
    method,
    headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, body: (await response.json()) as Answer["body"] };
}

async function cluster(node: string): Promise<ClusterView> {
  const answer = await call(node, "GET", "/v1/cluster");
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as unknown as ClusterView;
}

function service(name: string) {
  return { name, replicas: 0, containers: [{ name: "c", image }] };
}

/** Every listed node at the same applied index with the same state hash. */
async function converged(nodes: string[]): Promise<ClusterView[]> {
  return waitFor(`${nodes.join(", ")} to converge`, async () => {
    const views = await Promise.all(nodes.map(cluster));
    const [first] = views;
    const same = views.every(
      (v) => v.appliedIndex === first?.appliedIndex && v.stateHash === first?.stateHash,
    );
    return same ? views : null;
  });
}

async function leaderName(node: string): Promise<string> {
  return waitFor("a leader", async () => (await cluster(node)).leader?.name ?? null);
}

async function agentPid(node: string): Promise<number> {
  const status = (await lab.status()).find((s) => s.name === node);
  assert.ok(status?.agent.pid, `${node} has an agent`);
  return status.agent.pid;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  await lab.up(5, { agents: 1 });
  joinToken = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
  apiToken = lab.apiToken("lab1");
});

after(async () => {
  await lab.down();
});

describe("a fleet on the lab", () => {
  it("forms one cluster of 3 voters over mDNS, with no addresses given", async () => {
    const started = Date.now();
    await lab.start("lab2", { agentArgs: ["--token", joinToken] });
    await lab.start("lab3", { agentArgs: ["--token", joinToken] });
    const view = await waitFor("3 voters", async () => {
      const v = await cluster("lab1");
      return v.voters.length === 3 && v.learners.length === 0 ? v : null;
    });
    console.log(`3 nodes joined and promoted to voters in ${Date.now() - started} ms`);
    for (const node of ["lab2", "lab3"]) {
      // The API token belongs to the cluster: every node wrote the same one.
      assert.equal(lab.apiToken(node), apiToken);
      const seen = await cluster(node);
      assert.equal(seen.id, view.id);
      assert.equal(seen.leader?.id, view.leader?.id);
    }
    const nodes = (await call("lab2", "GET", "/v1/nodes")).body as unknown as { role: string }[];
    assert.deepEqual(
      nodes.map((n) => n.role),
      ["voter", "voter", "voter"],
    );
  });

  it("serves leader and linearizable reads on a follower, and forwards its writes", async () => {
    const leader = await leaderName("lab1");
    const follower = ["lab1", "lab2", "lab3"].find((n) => n !== leader) ?? "lab2";
    const created = await call(follower, "POST", "/v1/services", service("via-follower"));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    for (const consistency of ["leader", "linearizable"]) {
      const read = await call(
        "lab3",
        "GET",
        `/v1/services/via-follower?consistency=${consistency}`,
      );
      assert.equal(read.status, 200, JSON.stringify(read.body));
    }
    const bad = await call(follower, "GET", "/v1/services?consistency=eventual");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code, "E_VALIDATION");
  });

  it("a 4th node joins as a learner, receives a snapshot, and ends with the same state", async () => {
    // Large enough (about 2 MB of state) that the snapshot travels in several chunks.
    const names = Array.from({ length: 120 }, (_, i) => `svc-${i}`);
    const padded = (name: string) => ({
      ...service(name),
      containers: [{ name: "c", image, env: { PAD: "x".repeat(8000) } }],
    });
    for (let i = 0; i < names.length; i += 8) {
      const batch = names
        .slice(i, i + 8)
        .map((name) => call("lab2", "POST", "/v1/services", padded(name)));
      for (const answer of await Promise.all(batch)) assert.equal(answer.status, 201);
    }
    // The leader's log no longer holds the first entries: the newcomer can only get a snapshot.
    const leader = await leaderName("lab1");
    const compacted = await waitFor("a snapshot on the leader", async () => {
      const v = await cluster(leader);
      return v.snapshotIndex > 0 ? v : null;
    });
    await lab.start("lab4", { agentArgs: ["--token", joinToken] });
    const views = await converged(["lab1", "lab2", "lab3", "lab4"]);
    const lab4 = views[3];
    assert.ok(lab4);
    assert.ok(lab4.snapshotIndex >= compacted.snapshotIndex, "lab4 installed the snapshot");
    assert.equal(lab4.voters.length, 3, "four members keep three voters");
    assert.ok(lab4.learners.includes(lab4.answeredBy), "lab4 is a learner");
    assert.equal((await call("lab4", "GET", "/v1/services/svc-119")).status, 200);
  });

  it("elects a new leader after kill -9 of the leader's agent; a survivor takes writes", async () => {
    const old = await leaderName("lab1");
    const survivor = ["lab1", "lab2", "lab3"].find((n) => n !== old) ?? "lab2";
    process.kill(await agentPid(old), "SIGKILL");
    const killedAt = Date.now();
    try {
      let tries = 0;
      await waitFor(
        "a write through a survivor",
        async () => {
          tries += 1;
          const answer = await call(
            survivor,
            "POST",
            "/v1/services",
            service(`after-kill-${tries}`),
          );
          return answer.status === 201;
        },
        30_000,
        50,
      );
      const elapsed = Date.now() - killedAt;
      // The survivor holds the first write through the election and resends it to the new
      // leader under its request id: it succeeds, however the dead leader's sockets failed.
      assert.equal(tries, 1, "the first write after the kill succeeded");
      const now = await leaderName(survivor);
      console.log(
        `kill -9 of ${old}'s agent: write through ${survivor} succeeded after ${elapsed} ms (${tries} tries, new leader ${now})`,
      );
      assert.notEqual(now, old);
    } finally {
      await lab.start(old);
    }
    await converged(["lab1", "lab2", "lab3", "lab4"]);
  });

  it("holds a write sent during the election until the new leader takes it", async () => {
    const old = await leaderName("lab1");
    const survivor = ["lab1", "lab2", "lab3"].find((n) => n !== old) ?? "lab2";
    process.kill(await agentPid(old), "SIGKILL");
    try {
      // Past the moment the dead leader's connections close, before a new leader is certain:
      // the survivor must neither fail the write nor send it to the dead leader.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const sent = Date.now();
      const answer = await call(survivor, "POST", "/v1/services", service("during-election"));
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      console.log(`a write sent 300 ms after the kill was answered ${Date.now() - sent} ms later`);
    } finally {
      await lab.start(old);
    }
    await converged(["lab1", "lab2", "lab3", "lab4"]);
  });

  it("a partitioned minority cannot commit; after healing nothing acknowledged is lost", async () => {
    const cut = await leaderName("lab1");
    const majority = ["lab1", "lab2", "lab3", "lab4"].filter((n) => n !== cut);
    await lab.partition(cut);
    const acknowledged: string[] = [];
    const refused: string[] = [];
    try {
      const minorityWrites = Array.from({ length: 4 }, async (_, i) => {
        const name = `minority-${i}`;
        try {
          const answer = await call(cut, "POST", "/v1/services", service(name), 12_000);
          assert.notEqual(answer.status, 201, `${name} must not succeed in a minority`);
          assert.equal(answer.body.error?.code, "E_NO_QUORUM", JSON.stringify(answer.body));
        } catch (error) {
          if (!(error instanceof Error && error.name === "TimeoutError")) throw error;
        }
        refused.push(name);
      });
      const majorityWrites = (async () => {
        for (let i = 0; i < 10; i++) {
          const name = `majority-${i}`;
          await waitFor(`${name} on the majority`, async () => {
            const answer = await call(
              majority[i % 2] ?? "lab2",
              "POST",
              "/v1/services",
              service(name),
            );
            return answer.status === 201 || answer.status === 409;
          });
          acknowledged.push(name);
        }
      })();
      await Promise.all([...minorityWrites, majorityWrites]);
    } finally {
      await lab.heal();
    }
    const views = await converged(["lab1", "lab2", "lab3", "lab4"]);
    assert.equal(refused.length, 4);
    for (const node of ["lab1", "lab2", "lab3", "lab4"]) {
      const listed = (await call(node, "GET", "/v1/services")).body as unknown as {
        name: string;
      }[];
      const present = new Set(listed.map((s) => s.name));
      for (const name of acknowledged) assert.ok(present.has(name), `${name} on ${node}`);
      for (const name of refused)
        assert.ok(!present.has(name), `${name} never committed (${node})`);
    }
    assert.equal(new Set(views.map((v) => v.stateHash)).size, 1);
  });

  it("SIGTERM on the leader hands leadership to another voter before stopping", async () => {
    const old = await leaderName("lab1");
    const survivor = ["lab1", "lab2", "lab3"].find((n) => n !== old) ?? "lab2";
    const pid = await agentPid(old);
    process.kill(pid, "SIGTERM");
    const signalled = Date.now();
    const next = await waitFor(
      "another leader",
      async () => {
        const name = (await cluster(survivor)).leader?.name;
        return name && name !== old ? name : null;
      },
      30_000,
      20,
    );
    console.log(`SIGTERM of ${old}: ${next} leads after ${Date.now() - signalled} ms`);
    // The old leader says so in its log as it stops (written a moment after the hand-over).
    await waitFor("the old leader's log line", async () => {
      const log = readFileSync(`/run/shoal-lab/${old}/agent.log`, "utf8");
      return /"ok":true[^\n]*"msg":"leadership transfer on shutdown"/.test(log);
    });
    await waitFor("the old leader's agent to exit", async () => !processAlive(pid));
    await lab.start(old);
    await converged(["lab1", "lab2", "lab3", "lab4"]);
  });

  it("`shoal node rm` takes a node out of the configuration and keeps its row as left", async () => {
    const lab4 = (await cluster("lab4")).answeredBy;
    // lab4's own certificate opens lab1's peer routes, and a connection stays open with it.
    const identity = readTlsIdentity(labDataDir("lab4"));
    assert.ok(identity);
    const status = `${lab.base("lab1")}/internal/status`;
    assert.equal((await untrustedRequest(status, { body: "{}", identity })).status, 200);
    const open = tls.connect({
      host: nodeAddress("lab1"),
      port: 7420,
      cert: identity.certPem,
      key: identity.keyPem,
      rejectUnauthorized: false,
    });
    const closed = new Promise((resolve) => open.once("close", resolve));
    open.on("error", () => {});
    await new Promise((resolve) => open.once("secureConnect", resolve));
    const removed = await lab.exec("lab1", [shoalBin, "node", "rm", "lab4"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed node lab4/);
    const view = await waitFor("lab4 out of the configuration", async () => {
      const v = await cluster("lab1");
      return !v.learners.includes(lab4) && !v.voters.includes(lab4) ? v : null;
    });
    const row = view.nodes.find((n) => n.id === lab4);
    assert.equal(row?.status, "left");
    assert.equal(row?.role, null);
    assert.equal(view.voters.length, 3);
    // Its open connection is gone, and its certificate is refused at the next handshake.
    await closed;
    const refused = await untrustedRequest(status, { body: "{}", identity }).catch(() => null);
    assert.equal(refused, null, `answered ${JSON.stringify(refused)}`);
    await lab.kill("lab4");
  });

  it("an agent started with --leave leaves the cluster when it stops", async () => {
    await lab.restart("lab3", { agentArgs: ["--token", joinToken, "--leave"] });
    const lab3 = (await cluster("lab3")).answeredBy;
    const pid = await agentPid("lab3");
    process.kill(pid, "SIGTERM");
    await waitFor("lab3's agent to exit", async () => !processAlive(pid));
    const view = await waitFor("lab3 out of the configuration", async () => {
      const v = await cluster("lab1");
      return !v.voters.includes(lab3) && !v.learners.includes(lab3) ? v : null;
    });
    assert.equal(view.nodes.find((n) => n.id === lab3)?.status, "left");
    assert.ok(view.leader, "the fleet still has a leader");
    // Two live members keep one voter (never an even count): the leader trims to it.
    await waitFor("one voter and one learner", async () => {
      const v = await cluster("lab1");
      return v.voters.length === 1 && v.learners.length === 1;
    });
  });

  it("refuses peer requests without a certificate of the CA and joins with a wrong token, changing nothing", async () => {
    const before = await cluster("lab1");
    const other = await TestCa.create();
    const stranger = await other.identity(before.answeredBy);
    for (const kind of ["raft", "join", "propose"]) {
      const url = `${lab.base("lab1")}/internal/${kind}`;
      const anonymous = await untrustedRequest(url, { body: "{}" });
      assert.equal(anonymous.status, 401, kind);
      // Another CA's certificate naming a member: refused just the same.
      const forged = await untrustedRequest(url, { body: "{}", identity: stranger });
      assert.equal(forged.status, 401, kind);
    }
    const token = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
    const [, clusterId, digest] = token.split(".");
    await assert.rejects(
      lab.start("lab5", { agentArgs: ["--token", `shoal2.${clusterId}.${digest}.notthesecret`] }),
      /refused this node's token: .*join proof does not match/,
    );
    const elsewhere = `shoal2.${clusterId}.${"0".repeat(64)}.${token.split(".")[3]}`;
    await assert.rejects(
      lab.start("lab5", { agentArgs: ["--token", elsewhere] }),
      /but the token pins 0{16}…: .*refusing to join/,
    );
    // Without a token, lab5 hears the cluster on the LAN and says how to join instead of
    // starting a second cluster by mistake.
    await assert.rejects(lab.start("lab5", { agentArgs: [] }), /found a shoal cluster/);
    const after = await cluster("lab1");
    assert.deepEqual(after.voters.toSorted(), before.voters.toSorted());
    assert.deepEqual(after.learners.toSorted(), before.learners.toSorted());
    assert.ok(!after.nodes.some((n) => n.name === "lab5"));
  });

  it("keeps two clusters on one LAN apart", async () => {
    await lab.start("lab5", { agentArgs: ["--new-cluster"] });
    const own = readFileSync(join(labDataDir("lab5"), "api.token"), "utf8").trim();
    const response = await lab.fetch("lab5", "/v1/cluster", {
      headers: { authorization: `Bearer ${own}` },
      signal: AbortSignal.timeout(5000),
    });
    const second = (await response.json()) as ClusterView;
    const first = await cluster("lab1");
    assert.notEqual(second.id, first.id);
    assert.deepEqual(second.voters, [second.answeredBy]);
    assert.ok(!first.nodes.some((n) => n.name === "lab5"));
    // The first cluster's API token does not open the second.
    const foreign = await call("lab5", "GET", "/v1/cluster");
    assert.equal(foreign.status, 401);
  });
});
