import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pragmaValue } from "../state/db.ts";
import { SingleNodeLog } from "./single-node-log.ts";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-log-"));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const container = { name: "c", image: "i", env: {}, ports: [], mounts: [], essential: true };

describe("single-node command log", () => {
  it("keeps raft.db in WAL mode with synchronous=FULL, so an acknowledged command is on disk", () => {
    const log = SingleNodeLog.open(tempDir());
    assert.equal(pragmaValue(log.logDb, "journal_mode"), "wal");
    assert.equal(Number(pragmaValue(log.logDb, "synchronous")), 2);
    log.close();
  });

  it("continues from its data dir after a restart, applying nothing twice", async () => {
    const dir = tempDir();
    const first = SingleNodeLog.open(dir);
    await first.propose({ type: "cluster.init", at: 1, clusterId: "c1", apiToken: "t" });
    await first.propose({
      type: "service.create",
      at: 2,
      name: "web",
      replicas: 2,
      containers: [container],
    });
    first.close();
    const second = SingleNodeLog.open(dir);
    assert.equal(second.machine.appliedIndex(), 2);
    assert.equal(second.machine.view.services().length, 1);
    assert.equal(second.machine.view.events().length, 3);
    second.close();
  });

  it("replays logged entries that state.db had not applied", async () => {
    const dir = tempDir();
    const first = SingleNodeLog.open(dir);
    await first.propose({ type: "cluster.init", at: 1, clusterId: "c1", apiToken: "t" });
    await first.propose({
      type: "service.create",
      at: 2,
      name: "web",
      replicas: 2,
      containers: [container],
    });
    first.close();
    for (const suffix of ["", "-wal", "-shm"])
      rmSync(join(dir, `state.db${suffix}`), { force: true });
    const second = SingleNodeLog.open(dir);
    assert.equal(second.machine.appliedIndex(), 2);
    assert.equal(second.machine.view.service("web")?.replicas, 2);
    second.close();
  });

  it("loses nothing acknowledged when the process is killed with SIGKILL", async () => {
    const dir = tempDir();
    const fixture = join(import.meta.dirname, "fixtures", "propose-loop.ts");
    const child = spawn(process.execPath, ["--import", "tsx", fixture, dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const acknowledged: string[] = [];
    let buffered = "";
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        acknowledged.push(...lines);
        if (acknowledged.length >= 200) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
      child.on("error", reject);
    });
    assert.ok(acknowledged.length >= 200, "the fixture acknowledged fewer commands than expected");
    const log = SingleNodeLog.open(dir);
    const names = new Set(log.machine.view.services().map((s) => s.name));
    for (const name of acknowledged)
      assert.ok(names.has(name), `${name} was acknowledged but is lost`);
    assert.equal(log.machine.appliedIndex(), names.size);
    log.close();
  });
});
