// A 3-node fleet on the lab where one follower's data dir is a 12 MB tmpfs that fills up: the
// fleet keeps writing, the node stays up and is reported, and it catches up by itself once
// space returns.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { labDataDir } from "../../src/testing/lab.ts";
import { joinLabFleet, type LabApi, mdnsLab } from "../../src/testing/lab-fleet.ts";
import { waitFor } from "../../src/testing/wait.ts";

const lab = mdnsLab();
const full = "lab3";
const fullDir = labDataDir(full);
const filler = join(fullDir, "filler");
let api: LabApi;
let mounted = false;

/** Fills the file system under `path` with zeros until ENOSPC, as `dd if=/dev/zero` would. */
function fillUp(path: string): void {
  const fd = openSync(path, "a");
  try {
    for (let chunk = 1024 * 1024; chunk >= 512; ) {
      try {
        writeSync(fd, Buffer.alloc(chunk));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
        chunk /= 2;
      }
    }
  } finally {
    closeSync(fd);
  }
}

interface NodeRow {
  name: string;
  status: string;
  diskFull?: boolean;
}

const service = (name: string) => ({
  name,
  replicas: 0,
  containers: [{ name: "c", image: "shoal-test/busybox:1" }],
});

const appliedIndex = async (node: string) =>
  (await api.get<{ appliedIndex: number }>(node, "/v1/health")).appliedIndex;

before(async () => {
  await lab.up(3, { agents: 1 });
  mkdirSync(fullDir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", fullDir]);
  mounted = true;
  api = await joinLabFleet(lab, 3);
});

after(async () => {
  // `down` unmounts what is below the lab's dirs, this tmpfs included; this is in case it failed.
  await lab.down().finally(() => {
    if (!mounted) return;
    try {
      execFileSync("umount", ["--lazy", fullDir], { stdio: "ignore" });
    } catch {
      // Unmounted already.
    }
  });
});

describe("a follower whose disk fills", () => {
  const acknowledged: string[] = [];

  it("leaves the fleet writing; the node stays up, answers reads and is reported", async () => {
    const leader = await api.leaderName("lab1");
    assert.notEqual(leader, full, "lab1 creates the fleet and leads it");
    for (let i = 0; i < 5; i++) {
      await api.call(leader, "POST", "/v1/services", service(`before-${i}`));
      acknowledged.push(`before-${i}`);
    }
    await waitFor("lab3 caught up", async () =>
      (await appliedIndex(full)) >= (await appliedIndex(leader)) ? true : null,
    );
    fillUp(filler);
    const pid = (await lab.status()).find((s) => s.name === full)?.agent.pid;
    for (let i = 0; i < 30; i++) {
      await api.call(leader, "POST", "/v1/services", service(`during-${i}`));
      acknowledged.push(`during-${i}`);
    }
    const health = await waitFor("lab3 reports its disk full", async () => {
      const h = await api.get<{ disk?: { status: string } }>(full, "/v1/health");
      return h.disk?.status === "full" ? h : null;
    });
    assert.equal(health.disk?.status, "full");
    assert.ok(
      (await appliedIndex(full)) < (await appliedIndex(leader)),
      "lab3 holds back what its disk cannot take",
    );
    const nodes = await waitFor("the fleet knows lab3's disk is full", async () => {
      const list = await api.get<NodeRow[]>(leader, "/v1/nodes?consistency=leader");
      return list.find((n) => n.name === full)?.diskFull ? list : null;
    });
    assert.equal(nodes.find((n) => n.name === full)?.status, "ready", "still up, not down");
    assert.ok((await api.eventCount(leader, "node.disk_full")) >= 1);
    // Reads on the full node answer from its replica.
    const local = await api.get<{ name: string }[]>(full, "/v1/services");
    assert.ok(local.some((s) => s.name === "before-0"));
    const status = await lab.exec(full, ["./bin/shoal", "status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /disk.*full/i);
    assert.equal((await lab.status()).find((s) => s.name === full)?.agent.pid, pid, "no restart");
  });

  it("catches up by itself once space returns, every acknowledged write there", async () => {
    const leader = await api.leaderName("lab1");
    rmSync(filler);
    execFileSync("mount", ["-o", "remount,size=64m", fullDir]);
    await waitFor(
      "lab3 caught up",
      async () => ((await appliedIndex(full)) >= (await appliedIndex(leader)) ? true : null),
      30_000,
    );
    const names = (await api.get<{ name: string }[]>(full, "/v1/services")).map((s) => s.name);
    for (const name of acknowledged) assert.ok(names.includes(name), `${name} on lab3`);
    await waitFor("lab3's disk is ok again", async () => {
      const list = await api.get<NodeRow[]>(leader, "/v1/nodes?consistency=leader");
      return list.find((n) => n.name === full)?.diskFull === false ? list : null;
    });
    assert.ok((await api.eventCount(leader, "node.disk_ok")) >= 1);
  });
});
