// A real node store for API tests: a one-node command log over libSQL files in a temp dir, with
// a cluster and this node registered, and a fixed clock and id sequence.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SingleNodeLog } from "../adapters/single-node-log.ts";
import type { ApiNode } from "../api/context.ts";

export const testApiToken = "test-api-token";

export interface TestNode {
  node: ApiNode;
  log: SingleNodeLog;
  dispose(): void;
}

export async function openTestNode(): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-api-"));
  const log = SingleNodeLog.open(dir);
  let time = 1_000_000;
  let id = 0;
  await log.propose({
    type: "cluster.init",
    at: time,
    clusterId: "cluster-test",
    apiToken: testApiToken,
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
    store: () => ({ view: log.machine.view, log }),
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
