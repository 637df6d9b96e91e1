// A node whose disk is short of space: health and reads answer, and say so; writes are refused
// with E_NO_SPACE (507) and change nothing; once space returns, writes are taken again.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { limits } from "../core/limits.ts";
import { openTestNode, type TestNode, testApiToken } from "../testing/api-node.ts";
import { type Api, createApi } from "./app.ts";

let free = 10 * 1024 ** 3;
let test: TestNode;
let api: Api;

before(async () => {
  test = await openTestNode({ freeBytes: () => free });
  api = createApi(test.node);
});
after(() => {
  api.close();
  test.dispose();
});

const headers = { authorization: `Bearer ${testApiToken}`, "content-type": "application/json" };
const service = (name: string) =>
  JSON.stringify({ name, replicas: 0, containers: [{ name: "c", image: "shoal-test/busybox:1" }] });
const create = (name: string) =>
  api.app.request("/v1/services", { method: "POST", headers, body: service(name) });
const json = async (path: string) =>
  (await (await api.app.request(path, { headers })).json()) as Record<string, unknown>;

it("refuses writes while free space is below the reserve, keeps serving reads, and says why", async () => {
  assert.equal((await create("before")).status, 201);
  assert.deepEqual((await json("/v1/health")).disk, {
    status: "ok",
    freeBytes: free,
    reserveBytes: limits.diskReserveBytes,
    logHeld: false,
  });
  free = limits.diskReserveBytes - 1;
  const applied = test.log.view().appliedIndex();
  const refused = await create("refused");
  assert.equal(refused.status, 507);
  const body = (await refused.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, "E_NO_SPACE");
  assert.match(body.error.message, /below its reserve/);
  assert.equal(test.log.view().appliedIndex(), applied, "the refused write changed nothing");
  const health = await api.app.request("/v1/health");
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { disk: { status: string } }).disk.status, "full");
  assert.equal(((await json("/v1/cluster")).disk as { status: string }).status, "full");
  const listed = await api.app.request("/v1/services", { headers });
  const names = (await listed.json()) as { name: string }[];
  assert.deepEqual(
    names.map((s) => s.name),
    ["before"],
  );
  free = 10 * 1024 ** 3;
  assert.equal((await create("after")).status, 201);
  assert.equal(((await json("/v1/health")).disk as { status: string }).status, "ok");
});
