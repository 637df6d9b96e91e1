// Members over real mutual TLS on loopback: bootstrap, admission with the token, forwarded
// writes, and what a machine without a certificate or with a wrong token achieves: nothing.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { limits } from "../core/limits.ts";
import { apiTokenFields } from "../testing/cluster-init.ts";
import { type FleetMember, startFleetMember } from "../testing/fleet-member.ts";
import { fetchWithDataDirCa } from "../testing/https.ts";
import { waitFor } from "../testing/wait.ts";
import { caDigest, nodeCertificateFacts } from "./cluster-ca.ts";
import { type Fleet, openFleet } from "./fleet.ts";

const dirs: string[] = [];
const members: FleetMember<Fleet>[] = [];

async function member(
  id: string,
  token?: string,
  joinPorts: number[] = [],
): Promise<FleetMember<Fleet>> {
  const dataDir = mkdtempSync(join(tmpdir(), `shoal-fleet-${id}-`));
  dirs.push(dataDir);
  const started = await startFleetMember({ openFleet, id, dataDir, token, join: joinPorts });
  members.push(started);
  return started;
}

after(async () => {
  for (const m of members) await m.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };

describe("a fleet over mutual TLS on loopback", () => {
  it("bootstraps a cluster, admits a member with the token, and forwards its writes", async () => {
    const first = await member("aaaaaa1");
    const log = first.fleet.log;
    assert.ok(log && first.fleet.bootstrapped);
    await waitFor("a leader", async () => log.isLeader());
    const init = await log.propose({
      type: "cluster.init",
      at: 1,
      clusterId: first.fleet.token.clusterId ?? "",
      ...apiTokenFields("api"),
    });
    assert.equal(init.ok, true);
    const second = await member("bbbbbb2", first.fleet.token.text, [first.port]);
    const joined = second.fleet.log;
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

  it("refuses peer requests without a certificate and joins with a wrong token, changing nothing", async () => {
    const [first] = members;
    assert.ok(first);
    const before = first.fleet.log.view().appliedIndex();
    const anonymous = await insecurePost(first.port, "/internal/raft", "{}");
    assert.equal(anonymous.status, 401);
    // The benchmark's plain-HTTP sender header names nobody on a TLS node.
    const named = { "x-shoal-bench-node": first.id };
    assert.equal((await insecurePost(first.port, "/internal/raft", "{}", named)).status, 401);
    const { clusterId, caDigest } = first.fleet.token;
    const wrongToken = `shoal2.${clusterId}.${caDigest}.notthesecret`;
    await assert.rejects(member("cccccc3", wrongToken, [first.port]), /join proof does not match/);
    assert.equal(first.fleet.log.view().appliedIndex(), before);
    assert.equal(first.fleet.log.view().nodeById("cccccc3"), null);
  });

  it("a joiner whose token pins another CA refuses to join and says why, sending no proof", async () => {
    const [first] = members;
    assert.ok(first);
    const before = first.fleet.log.view().appliedIndex();
    const { clusterId, secret } = first.fleet.token;
    const pinned = `shoal2.${clusterId}.${"0".repeat(64)}.${secret}`;
    await assert.rejects(
      member("dddddd4", pinned, [first.port]),
      /serves a CA whose SHA-256 is [0-9a-f]{16}…, but the token pins 0{16}…: .*refusing to join/,
    );
    assert.equal(first.fleet.log.view().appliedIndex(), before);
  });

  it("rotates the join secret: the old token joins no node, members are unaffected", async () => {
    const [first, second] = members;
    assert.ok(first && second);
    const old = first.fleet.token.text;
    const fresh = await first.fleet.secrets.rotateJoinSecret();
    assert.notEqual(fresh, old);
    await assert.rejects(member("eeeeee5", old, [first.port]), /join proof does not match/);
    // A member asked is not the leader: it checks the proof against the store's secret too.
    await waitFor(
      "the rotation on the member",
      async () => second.fleet.secrets.joinSecret() === fresh.split(".")[3],
    );
    await assert.rejects(member("ffffff6", old, [second.port]), /join proof does not match/);
    const third = await member("gggggg7", fresh, [second.port]);
    await waitFor(
      "the new member's replica",
      async () => third.fleet.log.view().cluster() !== null,
    );
    const write = await second.fleet.log.propose({
      type: "node.label",
      at: 3,
      nodeId: "bbbbbb2",
      set: { a: "b" },
      remove: [],
    });
    assert.equal(write.ok, true, "the old members still write");
  });

  it("rotates the API token: once applied, the old one gets 401 on every node", async () => {
    const [first, second] = members;
    assert.ok(first && second);
    const fresh = await second.fleet.secrets.rotateApiToken();
    const index = first.fleet.log.view().appliedIndex();
    for (const m of [first, second]) {
      await waitFor("the rotation applied", async () => m.fleet.log.view().appliedIndex() >= index);
      const ask = (token: string) =>
        fetchWithDataDirCa(m.dataDir)(`https://127.0.0.1:${m.port}/v1/services`, {
          headers: { authorization: `Bearer ${token}` },
        });
      assert.equal((await ask("api")).status, 401, `${m.id}: the old token`);
      assert.equal((await ask(fresh)).status, 200, `${m.id}: the new token`);
    }
  });

  it("renews a certificate near its end, and the fleet goes on with the new one", async () => {
    const [first, second] = members;
    assert.ok(first && second);
    const serial = () => {
      const both = readFileSync(join(first.dataDir, "node.pem"), "utf8");
      const ca = readFileSync(join(first.dataDir, "ca.pem"), "utf8");
      const facts = nodeCertificateFacts(
        both.replace(/-----BEGIN PRIVATE KEY-----[\s\S]+$/, ""),
        ca,
      );
      assert.ok(facts.ok);
      return facts.value;
    };
    const before = serial();
    assert.equal(await first.fleet.renewCertificate(Date.now()), false, "not due yet");
    const due = before.notAfterMs - limits.nodeCertRenewBeforeMs + 1000;
    assert.equal(await first.fleet.renewCertificate(due), true);
    const after = serial();
    assert.notEqual(after.serial, before.serial);
    assert.ok(after.notAfterMs > before.notAfterMs);
    // The member reaches the renewed node on new connections: a forwarded write goes through.
    second.served.wire.closeAll();
    const write = await second.fleet.log.propose({
      type: "node.label",
      at: 4,
      nodeId: "bbbbbb2",
      set: { r: "1" },
      remove: [],
    });
    assert.equal(write.ok, true, JSON.stringify(write));
  });

  it("a member's certificate names it, the CA is the token's, and the keys stay in the data dir", async () => {
    const [first, second] = members;
    assert.ok(first && second);
    for (const m of [first, second]) {
      const ca = readFileSync(join(m.dataDir, "ca.pem"), "utf8");
      assert.equal(caDigest(ca), first.fleet.token.caDigest);
      const both = readFileSync(join(m.dataDir, "node.pem"), "utf8");
      const facts = nodeCertificateFacts(
        both.replace(/-----BEGIN PRIVATE KEY-----[\s\S]+$/, ""),
        ca,
      );
      assert.ok(facts.ok);
      assert.equal(facts.value.nodeId, m.id);
      assert.equal(statSync(join(m.dataDir, "node.pem")).mode & 0o777, 0o600);
      assert.equal(statSync(join(m.dataDir, "ca.key")).mode & 0o777, 0o600);
    }
  });

  it("refuses to admit a removed node again under its id, whatever token it holds", async () => {
    const [first] = members;
    assert.ok(first);
    const { clusterId, caDigest: digest } = first.fleet.token;
    const current = `shoal2.${clusterId}.${digest}.${first.fleet.secrets.joinSecret()}`;
    const gone = await member("hhhhhh8", current, [first.port]);
    const left = await first.fleet.log.propose({ type: "node.leave", at: 5, nodeId: gone.id });
    assert.equal(left.ok, true, JSON.stringify(left));
    await gone.stop();
    const again = mkdtempSync(join(tmpdir(), "shoal-fleet-again-"));
    dirs.push(again);
    await assert.rejects(
      startFleetMember({
        openFleet,
        id: gone.id,
        dataDir: again,
        token: current,
        join: [first.port],
      }),
      /was removed from the cluster; .*move its data dir aside/,
    );
  });
});

/** A POST over TLS that trusts any server and shows no certificate: what any machine can send. */
function insecurePost(
  port: number,
  path: string,
  body: string,
  headers: Record<string, string> = {},
) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const request = https.request(
      { host: "127.0.0.1", port, path, method: "POST", headers, rejectUnauthorized: false },
      (response) => {
        let text = "";
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}
