// `shoal status` and `shoal node` when the answering node's disk is full: they read (reads are
// served) and say why writes are refused.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { limits } from "../core/limits.ts";
import { type CliHarness, openCliHarness } from "../testing/cli-harness.ts";

let free = 10 * 1024 ** 3;
const service = JSON.stringify({ name: "s", containers: [{ name: "c", image: "busybox" }] });
let h: CliHarness;

before(async () => {
  h = await openCliHarness({ freeBytes: () => free });
});
after(() => h.dispose());

it("shows this node's disk in `shoal status`, full with the reason, then ok again", async () => {
  const roomy = await h.run(["status"]);
  assert.equal(roomy.code, 0, roomy.stderr);
  assert.match(roomy.stdout, /^this node's disk:\s+ok \(10240\.0 MB free, reserve 4\.0 MB\)$/m);
  free = 1024 * 1024;
  const full = await h.run(["status"]);
  assert.equal(full.code, 0, full.stderr);
  assert.match(
    full.stdout,
    /^this node's disk:\s+FULL \(1\.0 MB free, reserve 4\.0 MB\): this node refuses writes \(E_NO_SPACE\)/m,
  );
  const refused = await h.run(["service", "create", "-f", h.file("s.json", service)]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /below its reserve.*\(E_NO_SPACE\)\n$/);
  free = 10 * 1024 ** 3;
  assert.match((await h.run(["status"])).stdout, /^this node's disk:\s+ok/m);
  assert.ok(limits.diskReserveBytes === 4 * 1024 * 1024, "the figures above assume the reserve");
});

it("shows each node's recorded disk in `shoal node ls` and `node inspect`", async () => {
  await h.test.log.propose({
    type: "node.disk",
    at: 1,
    nodeId: "node-1",
    full: true,
    freeBytes: 0,
    reserveBytes: limits.diskReserveBytes,
  });
  const listed = await h.run(["node", "ls"]);
  assert.match(listed.stdout, /^ID\s+NAME\s+ADDRESS\s+STATUS\s+ROLE\s+ENGINE\s+DISK\s/m);
  assert.match(listed.stdout, /^node-1\s+pi\s+127\.0\.0\.1\s+ready\s+\S+\s+\S+\s+full\s/m);
  assert.match((await h.run(["node", "inspect", "pi"])).stdout, /^disk:\s+full/m);
});
