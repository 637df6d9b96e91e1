// The lab itself, before any multi-node feature relies on it: three nodes in network namespaces,
// each with its own engine and agent; multicast and mDNS across the bridge; partitions, dead
// hosts and restarts; and a `down` that leaves nothing behind. Needs root.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  type ExecResult,
  Lab,
  labBridge,
  labNamespace,
  labProbeScript,
  nodeAddress,
} from "../../src/testing/lab.ts";
import { waitFor } from "../../src/testing/wait.ts";

const image = "shoal-test/busybox:1";
const webPort = 18080;
// Each agent here is its own one-node cluster, started at once: with mDNS they would see each
// other's clusters. The fleet's own tests (fleet.test.ts) run the lab with mDNS.
const lab = new Lab({ waitSeconds: 45, agentArgs: ["--no-mdns"] });

function sh(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Whether `from`'s namespace reaches `to`'s agent (curl inside the namespace, 2 s at most). */
async function reaches(from: string, to: string): Promise<boolean> {
  const url = `https://${nodeAddress(to)}:7420/v1/health`;
  const result = await lab.exec(from, ["curl", "-sfk", "--max-time", "2", "-o", "/dev/null", url]);
  return result.code === 0;
}

async function selfOf(node: string): Promise<{ id: string; labels: Record<string, string> }> {
  const response = await lab.fetch(node, "/v1/nodes", {
    headers: { authorization: `Bearer ${lab.apiToken(node)}` },
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(response.status, 200);
  const nodes = (await response.json()) as {
    id: string;
    name: string;
    labels: Record<string, string>;
  }[];
  const self = nodes.find((n) => n.name === node);
  assert.ok(self, `${node} lists itself among ${JSON.stringify(nodes)}`);
  return self;
}

async function nodeIdOf(node: string): Promise<string> {
  return (await selfOf(node)).id;
}

/** Runs the probe's receiver in `to` and its sender in `from`; resolves with the receiver. */
async function multicast(from: string, to: string, timeoutMs: number): Promise<ExecResult> {
  const port = String(40_000 + Math.floor(Math.random() * 20_000));
  const message = `shoal-${Math.random().toString(36).slice(2)}`;
  const common = ["--port", port, "--timeout"];
  const receiver = lab.exec(to, [
    "node",
    labProbeScript,
    "recv",
    "--addr",
    nodeAddress(to),
    "--expect",
    message,
    ...common,
    String(timeoutMs),
  ]);
  const sender = lab.exec(from, [
    "node",
    labProbeScript,
    "send",
    "--addr",
    nodeAddress(from),
    "--message",
    message,
    ...common,
    String(Math.min(timeoutMs, 3000)),
  ]);
  const [received, sent] = await Promise.all([receiver, sender]);
  assert.equal(sent.code, 0, `sender failed: ${sent.stderr}`);
  return received;
}

function netnsNames(): string[] {
  return existsSync("/var/run/netns") ? readdirSync("/var/run/netns") : [];
}

/** Processes whose command line names a lab dir, or that run in a lab namespace. */
function labProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (/(\/run|\/var\/lib)\/shoal-lab\//.test(cmdline)) found.push(`${pid} ${cmdline}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

let lab1Id = "";

before(async () => {
  const started = Date.now();
  await lab.up(3);
  console.log(`lab up 3: ${Date.now() - started} ms`);
});

after(async () => {
  await lab.down();
});

describe("the lab", () => {
  it("runs one healthy agent per node, each on its own address, named after its node", async () => {
    for (const node of lab.nodes) {
      assert.ok(await lab.healthy(node), `${node} answers health on ${nodeAddress(node)}`);
      assert.ok((await nodeIdOf(node)).length > 0);
    }
    lab1Id = await nodeIdOf("lab1");
    const cli = await lab.exec("lab2", ["./bin/shoal", "status"]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(
      cli.stdout,
      /leader:\s+lab2 \(10\.77\.0\.12:7420\)/,
      "exec points the CLI at lab2",
    );
    const status = await lab.status();
    assert.deepEqual(
      status.map((s) => [s.name, s.address, s.healthy, s.dockerd.alive, s.agent.alive]),
      lab.nodes.map((n) => [n, nodeAddress(n), true, true, true]),
    );
  });

  it("has the test image in every node's own engine", async () => {
    for (const node of lab.nodes) {
      const result = await lab.exec(node, ["docker", "image", "inspect", "-f", "{{.Id}}", image]);
      assert.equal(result.code, 0, `${node}: ${result.stderr}`);
    }
  });

  it("publishes a service's port on lab1's own address, from lab1's engine only", async () => {
    const response = await lab.fetch("lab1", "/v1/services", {
      method: "POST",
      headers: {
        authorization: `Bearer ${lab.apiToken("lab1")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({
        name: "web",
        replicas: 1,
        containers: [
          {
            name: "httpd",
            image,
            command: ["httpd", "-f", "-p", "80"],
            ports: [{ container: 80, host: webPort }],
            memoryMb: 32,
            cpu: 0.1,
          },
        ],
      }),
    });
    assert.equal(response.status, 201, await response.text());
    const page = await waitFor("the published port on lab1", async () => {
      const answer = await fetch(`http://${nodeAddress("lab1")}:${webPort}/`, {
        signal: AbortSignal.timeout(2000),
      });
      return answer.text();
    });
    assert.match(page, /shoal test image/);
    const onLab2 = await lab.exec("lab2", ["docker", "ps", "-q"]);
    assert.equal(onLab2.stdout.trim(), "", "lab2's engine runs no container");
  });

  it("carries multicast from lab1's namespace to lab2's", async () => {
    const received = await multicast("lab1", "lab2", 8000);
    assert.equal(received.code, 0, `receiver: ${received.stdout} ${received.stderr}`);
    assert.match(received.stdout, new RegExp(`from ${nodeAddress("lab1")}`));
  });

  it("lets a bonjour browse in lab2 find a service published in lab1", async () => {
    const name = `probe-${Math.random().toString(36).slice(2, 8)}`;
    const probe = (mode: string, node: string, timeoutMs: number) =>
      lab.exec(node, [
        "node",
        labProbeScript,
        mode,
        "--addr",
        nodeAddress(node),
        "--name",
        name,
        "--timeout",
        String(timeoutMs),
      ]);
    const browse = probe("browse", "lab2", 10_000);
    const publish = probe("publish", "lab1", 4000);
    const [found, published] = await Promise.all([browse, publish]);
    assert.equal(published.code, 0, `publisher: ${published.stderr}`);
    assert.equal(found.code, 0, `browser: ${found.stdout} ${found.stderr}`);
    assert.match(found.stdout, new RegExp(`found ${name} txt.a=${nodeAddress("lab1")}`));
  });

  it("partitions lab1 from the others, multicast included, and heals", async () => {
    await lab.partition("lab1");
    try {
      assert.equal(await reaches("lab2", "lab1"), false, "lab2 must not reach lab1");
      assert.equal(await reaches("lab1", "lab3"), false, "lab1 must not reach lab3");
      assert.equal(await reaches("lab2", "lab3"), true, "lab2 still reaches lab3");
      assert.ok(await lab.healthy("lab1"), "the host still watches a partitioned node");
      const lost = await multicast("lab1", "lab2", 2000);
      assert.equal(lost.code, 1, `multicast crossed the partition: ${lost.stdout}`);
    } finally {
      await lab.heal();
    }
    assert.equal(await reaches("lab2", "lab1"), true, "lab2 reaches lab1 after heal");
  });

  it("kill lab1 leaves no process in its namespace; start and restart bring back the same node", async () => {
    await lab.kill("lab1");
    const web = await fetch(`http://${nodeAddress("lab1")}:${webPort}/`, {
      signal: AbortSignal.timeout(2000),
    }).catch((error: unknown) => error);
    assert.ok(web instanceof Error, "lab1's container died with its host");
    const left = sh("ip", "netns", "pids", labNamespace("lab1")).trim();
    assert.equal(left, "", "no process in lab1's namespace");
    assert.deepEqual(
      labProcesses().filter((p) => p.includes("/lab1/")),
      [],
      "no process of lab1 anywhere",
    );
    assert.equal(await lab.healthy("lab1", 1000), false);
    const killed = (await lab.status()).find((s) => s.name === "lab1");
    assert.equal(killed?.agent.alive, false);
    assert.equal(killed?.dockerd.alive, false);

    const started = Date.now();
    await lab.start("lab1", { agentArgs: ["--labels", "zone={name},at={address}"] });
    console.log(`lab start lab1 after kill: ${Date.now() - started} ms`);
    assert.ok(await lab.healthy("lab1"));
    const self = await selfOf("lab1");
    assert.equal(self.id, lab1Id, "lab1 keeps its node id across restart");
    assert.deepEqual(self.labels, { zone: "lab1", at: nodeAddress("lab1") }, "per-node args");
    await lab.restart("lab1");
    assert.equal(await nodeIdOf("lab1"), lab1Id, "and across a restart of a live node");
  });

  it("down leaves no namespace, bridge, rule, process, mount or state dir", async () => {
    const started = Date.now();
    await lab.down();
    console.log(`lab down: ${Date.now() - started} ms`);
    assert.deepEqual(
      netnsNames().filter((n) => n.startsWith("shoal-lab")),
      [],
    );
    assert.throws(() => sh("ip", "link", "show", labBridge), "the bridge is gone");
    assert.doesNotMatch(sh("ip", "-br", "link"), /shoal-lab/, "no veth is left");
    assert.doesNotMatch(sh("iptables", "-S"), /shoal-lab|SHOAL-LAB/i, "no iptables rule");
    assert.deepEqual(labProcesses(), [], "no lab process");
    assert.doesNotMatch(readFileSync("/proc/self/mountinfo", "utf8"), /shoal-lab/, "no mount");
    assert.equal(existsSync("/run/shoal-lab"), false);
    assert.equal(existsSync("/var/lib/shoal-lab"), false);
    assert.doesNotMatch(sh("find", "/sys/fs/cgroup", "-maxdepth", "2"), /shoal-lab/, "no cgroup");
  });

  it("holds 11 nodes, those past --engines with an agent alone; killing lab1 leaves lab11 be", async () => {
    await lab.up(11, { agents: 0, engines: 1 });
    await lab.start("lab11");
    await lab.start("lab1");
    const status = await lab.status();
    assert.equal(status.length, 11);
    const eleventh = status.find((s) => s.name === "lab11");
    assert.deepEqual(
      [eleventh?.address, eleventh?.healthy, eleventh?.dockerd.pid, eleventh?.dockerd.alive],
      ["10.77.0.21", true, null, false],
      "lab11 answers health without an engine",
    );
    assert.ok(status.find((s) => s.name === "lab1")?.dockerd.alive, "lab1 has its engine");
    await lab.kill("lab1");
    assert.equal(await lab.healthy("lab1", 1000), false);
    assert.ok(await lab.healthy("lab11"), "lab11's agent outlived lab1's kill");
    await lab.down();
  });
});
