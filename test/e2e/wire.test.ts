// What a fleet puts on the wire, captured with tcpdump on the lab's bridge: a fleet forming, a
// remote CLI write, a snapshot sent to a late joiner and a leader failover hold neither token nor
// any task env value, and every TCP payload on port 7420 is TLS. Then 200 slow unauthenticated
// connections to one node: the fleet stays healthy and the node's memory bounded. Needs root.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { limits } from "../../src/core/limits.ts";
import { labDataDir, nodeAddress } from "../../src/testing/lab.ts";
import { joinLabFleet, type LabApi, mdnsLab } from "../../src/testing/lab-fleet.ts";
import { isTlsRecords, tcpStreams } from "../../src/testing/pcap.ts";
import { waitFor } from "../../src/testing/wait.ts";

const shoalBin = join(import.meta.dirname, "..", "..", "bin", "shoal");
const image = "shoal-test/busybox:1";
// A snapshot every 20 applied entries: the late joiner must be sent one.
const lab = mdnsLab({ agentArgs: ["--snapshot-entries", "20"] });
const scratch = mkdtempSync(join(tmpdir(), "shoal-wire-"));
let api: LabApi;

interface ClusterView {
  term: number;
  leader: { name: string | null } | null;
  snapshotIndex: number;
  nodes: { name: string; status: string }[];
}

/** tcpdump on the bridge, writing every TCP segment to or from port 7420, until stopped. */
async function capture(path: string): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    "tcpdump",
    ["-i", "shoal-lab0", "-U", "-s", "0", "-w", path, "tcp", "port", "7420"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let said = "";
  child.stderr?.on("data", (chunk) => {
    said += chunk;
  });
  await waitFor("tcpdump to listen", async () => said.includes("listening on"), 10_000);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGINT");
      }),
  };
}

function cluster(node: string): Promise<ClusterView> {
  return api.get<ClusterView>(node, "/v1/cluster");
}

describe("the wire", () => {
  before(async () => {
    await lab.up(4, { agents: 0 });
  });

  after(async () => {
    await lab.down();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("carries no token and no env value, and only TLS, through forming, writes, a snapshot and a failover", async () => {
    const pcap = join(scratch, "fleet.pcap");
    const tcpdump = await capture(pcap);
    const envValue = `env-${randomBytes(12).toString("hex")}`;
    let joinToken: string;
    try {
      await lab.start("lab1");
      api = await joinLabFleet(lab, 3, { engines: 3 });
      joinToken = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
      // A remote CLI write: from lab2's namespace to lab1's address, with lab2's token and CA.
      const spec = join(scratch, "wire.json");
      const containers = [{ name: "c", image, env: { SECRET: envValue } }];
      writeFileSync(spec, JSON.stringify({ name: "wire", replicas: 0, containers }));
      const address = `SHOAL_ADDR=${nodeAddress("lab1")}:7420`;
      const created = await lab.exec("lab2", [
        "env",
        address,
        shoalBin,
        "service",
        "create",
        "-f",
        spec,
      ]);
      assert.equal(created.code, 0, created.stderr);
      for (let i = 0; i < 30; i += 1) {
        await api.call("lab1", "POST", "/v1/services", { name: `w${i}`, replicas: 0, containers });
      }
      // A late joiner: the leader's log is compacted, so lab4 is sent a snapshot.
      await lab.start("lab4", { agentArgs: ["--token", joinToken] });
      await waitFor("lab4's replica from a snapshot", async () => {
        const view = await cluster("lab4").catch(() => null);
        return view && view.snapshotIndex > 0 && view.nodes.length === 4 ? view : null;
      });
      // A failover: the leader dies, another takes a write, the old one comes back.
      const old = (await cluster("lab1")).leader?.name ?? "lab1";
      await lab.kill(old);
      const survivor = ["lab1", "lab2", "lab3"].find((n) => n !== old) ?? "lab2";
      await waitFor("a new leader", async () => {
        const view = await cluster(survivor).catch(() => null);
        return view?.leader?.name && view.leader.name !== old ? view : null;
      });
      await api.call(survivor, "POST", "/v1/services", { name: "after", replicas: 0, containers });
      await lab.start(old);
    } finally {
      await tcpdump.stop();
    }
    const stored = await api.get<{ containers: { env: Record<string, string> }[] }>(
      "lab3",
      "/v1/services/wire",
    );
    assert.equal(stored.containers[0]?.env.SECRET, envValue, "the env value was there to be seen");

    const raw = readFileSync(pcap);
    const streams = tcpStreams(raw);
    const bytes = streams.reduce((sum, s) => sum + s.bytes.length, 0);
    console.log(`captured ${streams.length} TCP streams on port 7420, ${bytes} payload bytes`);
    assert.ok(streams.length >= 10 && bytes > 100_000, "the capture holds the fleet's traffic");
    for (const stream of streams) {
      const walked = isTlsRecords(stream.bytes);
      const where = stream.bytes.subarray(walked.at, walked.at + 16).toString("hex");
      assert.ok(walked.ok, `${stream.name} is not TLS at byte ${walked.at}: ${where}`);
    }
    const secret = joinToken.split(".")[3] ?? "";
    const tokens = [
      ["the API token", lab.apiToken("lab1")],
      ["the join secret", secret],
    ] as const;
    for (const [what, value] of [...tokens, ["the env value", envValue]] as const) {
      assert.ok(value.length >= 16);
      assert.equal(raw.includes(value), false, `${what} is on the wire`);
    }
    // Nor in any node's log, its Raft log, its state or its snapshots.
    for (const node of ["lab1", "lab2", "lab3", "lab4"]) {
      const stores = readdirSync(labDataDir(node))
        .filter((name) => /^(raft|state|snapshot)\b/.test(name))
        .map((name) => join(labDataDir(node), name));
      for (const path of [`/run/shoal-lab/${node}/agent.log`, ...stores]) {
        const content = readFileSync(path);
        for (const [what, value] of tokens) {
          assert.equal(content.includes(value), false, `${what} is in ${path}`);
        }
      }
    }
  });

  it("stays healthy under 200 slow unauthenticated connections to one node, its memory bounded", async () => {
    const before = await cluster("lab2");
    const target = nodeAddress("lab1");
    const pid = (await lab.status()).find((s) => s.name === "lab1")?.agent.pid;
    assert.ok(pid, "lab1's agent runs");
    const sockets: net.Socket[] = [];
    const closed: boolean[] = [];
    for (let i = 0; i < 200; i += 1) {
      // Half never start TLS; half finish it and send headers that never end.
      const socket =
        i % 2 === 0
          ? net.connect(7420, target)
          : tls.connect({ host: target, port: 7420, rejectUnauthorized: false }, () =>
              socket.write("GET /v1/health HTTP/1.1\r\nhost: x\r\n"),
            );
      socket.on("error", () => {});
      socket.on("close", () => {
        closed[i] = true;
      });
      sockets.push(socket);
    }
    try {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const early = closed.filter(Boolean).length;
      const rss = Number(
        /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0,
      );
      console.log(
        `200 slow connections to lab1: ${early} closed at once (per-client cap), lab1 RSS ${Math.round(rss / 1024)} MB`,
      );
      assert.ok(early >= 200 - limits.connectionsPerClientMax, `${early} closed at once`);
      assert.ok(rss / 1024 < 300, `lab1's RSS is ${rss / 1024} MB`);
      // Past the handshake and header timeouts every slow connection is gone.
      await waitFor(
        "every slow connection closed",
        async () => closed.filter(Boolean).length === 200,
        20_000,
      );
      const now = await cluster("lab2");
      assert.equal(now.term, before.term, "no election");
      assert.equal(now.leader?.name, before.leader?.name);
      assert.deepEqual(
        now.nodes.filter((n) => n.status !== "ready").map((n) => n.name),
        [],
        "no node marked down",
      );
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});
