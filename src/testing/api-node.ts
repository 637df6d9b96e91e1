// A real node store for API tests: the replicated command log of a one-member cluster over
// libSQL files in a temp dir, with a cluster and this node registered, a fixed wall clock and an
// id sequence.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiskSpace } from "../adapters/disk-space.ts";
import { RaftCommandLog } from "../adapters/raft-command-log.ts";
import { systemClock } from "../adapters/system-clock.ts";
import type { ApiNode } from "../api/context.ts";
import { apiTokenFields } from "./cluster-init.ts";

export const testApiToken = "test-api-token";

export interface TestNode {
  node: ApiNode;
  log: RaftCommandLog;
  dispose(): void;
}

/** A node whose disk has `freeBytes()` free (measured at each call), 10 GB unless told. */
export async function openTestNode(options: { freeBytes?: () => number } = {}): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-api-"));
  const freeBytes = options.freeBytes ?? (() => 10 * 1024 ** 3);
  const space = new DiskSpace(dir, () => systemClock.monotonic(), undefined, freeBytes, 0);
  const log = await RaftCommandLog.openLone(dir, "node-1", systemClock, space);
  let time = 1_000_000;
  let id = 0;
  await log.propose({
    type: "cluster.init",
    at: time,
    clusterId: "cluster-test",
    ...apiTokenFields(testApiToken),
  });
  await log.propose({
    type: "node.register",
    at: time,
    id: "node-1",
    name: "pi",
    address: "127.0.0.1",
    port: 7420,
    arch: "x64",
    os: "linux",
    cpus: 4,
    memoryMb: 4096,
    labels: {},
    version: "test",
  });
  const silent = { info() {}, warn() {}, error() {} };
  const node: ApiNode = {
    nodeId: "node-1",
    store: () => ({ view: log.view(), log }),
    disk: () => log.disk(),
    clock: { now: () => (time += 1), monotonic: () => time },
    newId: () => `task-${++id}`,
    logger: silent,
  };
  return {
    node,
    log,
    dispose: () => {
      log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
