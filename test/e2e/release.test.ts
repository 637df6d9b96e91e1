// The release binaries (`npm run build`): each runs from an empty directory with no
// node_modules; the arm64 one, under qemu-user, runs a one-node fleet with its own libSQL addon;
// the x64 one unpacks its addon into TMPDIR and passes the lab's smoke test: three nodes find
// each other over mDNS, elect a leader and run a service. Needs root, as the lab does.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { readTlsIdentity } from "../../src/adapters/tls-files.ts";
import { AgentProcess } from "../../src/testing/agent-process.ts";
import { untrustedRequest } from "../../src/testing/https.ts";
import { labDataDir } from "../../src/testing/lab.ts";
import { formLabFleet, mdnsLab, runningTasks, webContainers } from "../../src/testing/lab-fleet.ts";
import { TestCa } from "../../src/testing/test-ca.ts";
import { waitFor } from "../../src/testing/wait.ts";
import { version } from "../../src/version.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const dist = join(root, "dist");
const empty = mkdtempSync(join(tmpdir(), "shoal-release-"));
// Every binary this file starts (the lab's agents too) unpacks its libSQL addon into TMPDIR and
// leaves it there: into this test's own folder, removed at the end, rather than /tmp.
process.env.TMPDIR = empty;

before(async () => {
  await run(join(root, "node_modules", ".bin", "bun"), [join(root, "scripts", "build.ts")], {
    cwd: root,
    timeout: 300_000,
  });
});

after(() => {
  rmSync(empty, { recursive: true, force: true });
});

/** Copies a binary into an empty directory, away from the checkout and its node_modules. */
function alone(name: string): string {
  const path = join(empty, name);
  copyFileSync(join(dist, name), path);
  return path;
}

describe("release binaries", () => {
  it("lists each binary in SHA256SUMS with its digest", () => {
    const sums = readFileSync(join(dist, "SHA256SUMS"), "utf8").trim().split("\n");
    assert.deepEqual(
      sums.map((line) => line.split(/\s+/)[1]),
      ["shoal-linux-x64", "shoal-linux-arm64"],
    );
    for (const line of sums) {
      const [digest, name = ""] = line.split(/\s+/);
      const actual = createHash("sha256")
        .update(readFileSync(join(dist, name)))
        .digest("hex");
      assert.equal(actual, digest, name);
    }
  });

  it("runs the x64 binary from an empty directory", async () => {
    const { stdout } = await run(alone("shoal-linux-x64"), ["version"], { cwd: empty });
    assert.match(stdout, new RegExp(`^version:\\s+${version.replaceAll(".", "\\.")}$`, "m"));
    assert.match(stdout, /^commit:\s+[0-9a-f]{7,}$/m);
    assert.match(stdout, /^runtime:\s+bun v\d+\.\d+\.\d+$/m);
    assert.match(stdout, /^arch:\s+linux\/x64$/m);
  });

  it("unpacks its libSQL addon into TMPDIR, where the systemd unit points it", async () => {
    const tmp = mkdtempSync(join(empty, "tmp-"));
    await run(alone("shoal-linux-x64"), ["version"], { cwd: empty, env: { TMPDIR: tmp } });
    assert.ok(
      readdirSync(tmp, { withFileTypes: true }).some((e) => e.name.endsWith(".node")),
      "no addon in TMPDIR",
    );
  });

  it("runs the arm64 binary under qemu-user", async () => {
    const binary = alone("shoal-linux-arm64");
    const { stdout } = await run(
      "qemu-aarch64",
      ["-L", "/usr/aarch64-linux-gnu", binary, "version"],
      { cwd: empty, timeout: 120_000 },
    );
    assert.match(stdout, /^arch:\s+linux\/arm64$/m);
    assert.match(stdout, /^runtime:\s+bun v/m);
  });

  it("runs a one-node fleet on the arm64 binary under qemu-user: its libSQL addon and Docker", async () => {
    const qemu = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", alone("shoal-linux-arm64")];
    const agent = new AgentProcess({ command: qemu, healthTimeoutMs: 120_000 });
    try {
      await agent.start();
      type Node = { arch: string; status: string; engineReady: boolean };
      // The engine's state comes with the node's next report, a moment after health answers.
      const nodes = await waitFor(
        "the arm64 node to report its engine ready",
        async () => {
          const listed = (await agent.json("GET", "/v1/nodes")) as Node[];
          return listed.some((node) => node.engineReady) ? listed : null;
        },
        60_000,
      );
      assert.deepEqual(
        nodes.map((node) => [node.arch, node.status, node.engineReady]),
        [["arm64", "ready", true]],
      );
    } finally {
      await agent.dispose();
    }
  });

  describe("the lab's smoke test, on the compiled x64 binary", () => {
    const lab = mdnsLab({ bin: join(dist, "shoal-linux-x64") });

    after(async () => {
      await lab.down();
    });

    it("forms a fleet over mDNS, elects a leader and runs a service", async () => {
      const api = await formLabFleet(lab, 3);
      const leader = await api.leaderName("lab2");
      assert.ok(["lab1", "lab2", "lab3"].includes(leader));
      await api.call("lab3", "POST", "/v1/services", {
        name: "smoke",
        replicas: 3,
        containers: webContainers(),
      });
      const service = await waitFor("3 tasks running, one per node", async () => {
        const view = await api.service("lab1", "smoke");
        const on = new Set(runningTasks(view).map((t) => t.nodeName));
        return runningTasks(view).length === 3 && on.size === 3 ? view : null;
      });
      assert.equal(service.desiredCount, 3);
      // Every agent is the compiled binary itself, not Node running the sources.
      for (const node of (await lab.status()).slice(0, 3)) {
        assert.ok(node.healthy && node.agent.pid, `${node.name} is healthy`);
        const exe = realpathSync(`/proc/${node.agent.pid}/exe`);
        assert.equal(exe, realpathSync(join(dist, "shoal-linux-x64")), `${node.name}'s agent`);
      }
    });

    it("refuses peers without a certificate of the CA under Bun's TLS too", async () => {
      const stranger = await (await TestCa.create()).identity("lab1");
      const own = readTlsIdentity(labDataDir("lab2"));
      assert.ok(own);
      for (const node of ["lab1", "lab2", "lab3"]) {
        const url = `${lab.base(node)}/internal/status`;
        assert.equal((await untrustedRequest(url, { body: "{}" })).status, 401, node);
        const forged = await untrustedRequest(url, { body: "{}", identity: stranger });
        assert.equal(forged.status, 401, `${node}: another CA's certificate`);
        // The same request with a member's own certificate is answered: the refusals are the CA's.
        assert.equal(
          (await untrustedRequest(url, { body: "{}", identity: own })).status,
          200,
          node,
        );
      }
    });
  });
});
