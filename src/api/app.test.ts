import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { emptyPlan } from "../scheduler/plan-builder.ts";
import { openTestNode, type TestNode, testApiToken } from "../testing/api-node.ts";
import { type Api, createApi } from "./app.ts";

let test: TestNode;
let api: Api;

before(async () => {
  test = await openTestNode();
  api = createApi(test.node);
});
after(() => {
  api.close();
  test.dispose();
});

const auth = { authorization: `Bearer ${testApiToken}` };
const web = {
  name: "web",
  replicas: 3,
  containers: [
    {
      name: "httpd",
      image: "shoal-test/busybox:1",
      command: ["httpd", "-f", "-p", "80"],
      ports: [{ container: 80, host: 0 }],
      memoryMb: 32,
      cpu: 0.1,
    },
  ],
};

function request(
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
) {
  return api.app.request(path, {
    method: init.method ?? "GET",
    headers: { "content-type": "application/json", ...auth, ...init.headers },
    body: init.body,
  });
}

/** Everything the store holds, to assert that a refused request changed nothing. */
function storeDump(): string {
  const view = test.log.view();
  return JSON.stringify([
    view.appliedIndex(),
    view.services(),
    view.taskDefinitions(),
    view.tasks(),
    view.events(),
  ]);
}

async function expectError(
  response: Response,
  status: number,
  code: string,
): Promise<{ message: string; details: unknown }> {
  assert.equal(response.status, status);
  const body = (await response.json()) as {
    error: { code: string; message: string; details: unknown };
  };
  assert.equal(body.error.code, code, body.error.message);
  return body.error;
}

describe("api", () => {
  it("answers health without a token", async () => {
    const response = await api.app.request("/v1/health");
    assert.equal(response.status, 200);
  });

  it("answers health 503 while the store is not open", async () => {
    const closed = createApi({ ...test.node, store: () => null });
    assert.equal((await closed.app.request("/v1/health")).status, 503);
  });

  it("answers 503 E_NOT_READY, not 401, to every /v1 route while the store is not open", async () => {
    const closed = createApi({ ...test.node, store: () => null });
    for (const headers of [auth, { authorization: "Bearer nope" }, {}]) {
      for (const path of ["/v1/services", "/v1/cluster", "/v1/events?follow=false"]) {
        await expectError(await closed.app.request(path, { headers }), 503, "E_NOT_READY");
      }
    }
  });

  it("accepts a consistency level on the fleet's read routes", async () => {
    for (const path of [
      "/v1/cluster?consistency=local",
      "/v1/nodes?consistency=leader",
      "/v1/nodes/node-1?consistency=linearizable",
      "/v1/services?consistency=linearizable",
      "/v1/tasks?consistency=leader&state=running",
    ]) {
      assert.equal((await request(path)).status, 200, path);
    }
  });

  it("names an unknown query parameter", async () => {
    const error = await expectError(await request("/v1/services?bogus=1"), 400, "E_VALIDATION");
    assert.match(error.message, /bogus/);
  });

  it("resumes events after the Last-Event-ID header, which overrides ?since", async () => {
    const last = test.log.view().lastEventSeq();
    assert.ok(last >= 2);
    const text = await (
      await request("/v1/events?since=0&follow=false", {
        headers: { "last-event-id": String(last - 1) },
      })
    ).text();
    const seqs = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(seqs, [last]);
  });

  it("creates, lists, inspects, scales and deletes a service", async () => {
    const created = await request("/v1/services", { method: "POST", body: JSON.stringify(web) });
    assert.equal(created.status, 201);
    const service = (await created.json()) as {
      name: string;
      replicas: number;
      taskDefinition: string;
    };
    assert.deepEqual([service.name, service.replicas, service.taskDefinition], ["web", 3, "web:1"]);
    const list = (await (await request("/v1/services")).json()) as unknown[];
    assert.ok(Array.isArray(list) && list.length === 1);
    const scaled = await request("/v1/services/web", {
      method: "PATCH",
      body: JSON.stringify({ replicas: 1 }),
    });
    assert.equal(((await scaled.json()) as { replicas: number }).replicas, 1);
    const revised = await request("/v1/services/web", {
      method: "PATCH",
      body: JSON.stringify({ containers: [{ name: "httpd", image: "shoal-test/busybox:1" }] }),
    });
    assert.equal(((await revised.json()) as { taskDefinition: string }).taskDefinition, "web:2");
    const definitions = (await (await request("/v1/task-definitions/web")).json()) as unknown[];
    assert.equal(definitions.length, 2);
    assert.equal((await request("/v1/services/web", { method: "DELETE" })).status, 200);
    await expectError(await request("/v1/services/web"), 404, "E_NOT_FOUND");
  });

  it("creates a global service with placement, shows deployments, and rolls back", async () => {
    const spec = {
      name: "agent",
      mode: "global",
      containers: [{ name: "a", image: "shoal-test/busybox:1" }],
      placement: { constraints: ["arch != s390x"], strategy: "spread", spreadBy: "zone" },
      deployment: { minHealthyPercent: 50 },
      stopAfterDisconnectMs: 10_000,
    };
    const created = await request("/v1/services", { method: "POST", body: JSON.stringify(spec) });
    assert.equal(created.status, 201);
    const body = (await created.json()) as Record<string, unknown>;
    assert.equal(body.mode, "global");
    assert.deepEqual(body.deployment, { maxPercent: 200, minHealthyPercent: 50, rollback: true });
    assert.equal(body.stopAfterDisconnectMs, 10_000);
    // The scheduler's word that revision 1 runs everywhere: a rollback may go back to it.
    const version = test.log.view().service("agent")?.version ?? 0;
    const completed = await test.log.propose({
      type: "plan.apply",
      at: 1,
      plan: {
        ...emptyPlan(),
        completeDeployments: ["agent"],
        reads: { services: { agent: version }, tasks: {}, nodes: {} },
      },
    });
    assert.ok(completed.ok);
    const image = { containers: [{ name: "a", image: "shoal-test/busybox:1", env: { V: "2" } }] };
    await request("/v1/services/agent", { method: "PATCH", body: JSON.stringify(image) });
    const rolled = await request("/v1/services/agent/rollback", { method: "POST" });
    assert.equal(((await rolled.json()) as { taskDefinition: string }).taskDefinition, "agent:1");
    const detail = (await (await request("/v1/services/agent")).json()) as {
      deployments: { fromRevision: number | null; toRevision: number; status: string }[];
    };
    assert.deepEqual(
      detail.deployments.map((d) => [d.fromRevision, d.toRevision, d.status]),
      [
        [2, 1, "in_progress"],
        [1, 2, "superseded"],
        [null, 1, "completed"],
      ],
    );
    assert.equal((await request("/v1/services/agent", { method: "DELETE" })).status, 200);
  });

  it("drains, activates and labels a node", async () => {
    const drained = await request("/v1/nodes/node-1/drain", { method: "POST" });
    assert.equal(((await drained.json()) as { status: string }).status, "draining");
    const active = await request("/v1/nodes/node-1/activate", { method: "POST" });
    assert.equal(((await active.json()) as { status: string }).status, "ready");
    const labelled = await request("/v1/nodes/node-1/labels", {
      method: "POST",
      body: JSON.stringify({ set: { zone: "desk" } }),
    });
    assert.deepEqual(((await labelled.json()) as { labels: object }).labels, { zone: "desk" });
    const cleared = await request("/v1/nodes/node-1/labels", {
      method: "POST",
      body: JSON.stringify({ remove: ["zone"] }),
    });
    assert.deepEqual(((await cleared.json()) as { labels: object }).labels, {});
  });

  it("runs a one-off task that waits for placement, and stops it", async () => {
    const body = JSON.stringify({
      containers: [{ name: "once", image: "shoal-test/busybox:1", command: ["true"] }],
    });
    const response = await request("/v1/tasks", { method: "POST", body });
    assert.equal(response.status, 201);
    const task = (await response.json()) as { id: string; state: string; node: string | null };
    assert.deepEqual([task.state, task.node], ["pending", null]);
    const stopped = await request(`/v1/tasks/${task.id}/stop`, { method: "POST" });
    assert.equal(((await stopped.json()) as { state: string }).state, "stopped");
    await expectError(
      await request(`/v1/tasks/${task.id}/stop`, { method: "POST" }),
      409,
      "E_CONFLICT",
    );
    const listed = (await (await request("/v1/tasks?state=stopped")).json()) as { id: string }[];
    assert.ok(listed.some((t) => t.id === task.id));
  });

  it("serves events as server-sent events from ?since=", async () => {
    const response = await request("/v1/events?since=0&follow=false");
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const text = await response.text();
    assert.match(text, /"type":"cluster.created"/);
    const seqs = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const later = await (await request(`/v1/events?since=${seqs[1]}&follow=false`)).text();
    assert.doesNotMatch(later, /"type":"cluster.created"/);
  });

  it("refuses a host-path mount no node allows with 400, storing nothing, and takes one a node allows", async () => {
    const mounting = (source: string) => ({
      name: `m${source.length}`,
      containers: [
        { name: "c", image: "shoal-test/busybox:1", mounts: [{ source, target: "/data" }] },
      ],
    });
    const before = storeDump();
    const body = JSON.stringify(mounting("/srv/media"));
    const error = await expectError(
      await request("/v1/services", { method: "POST", body }),
      400,
      "E_VALIDATION",
    );
    assert.match(
      error.message,
      /no node allows mounting the host path \/srv\/media: .*--allow-host-path DIR/,
    );
    const run = JSON.stringify({ containers: mounting("/etc").containers });
    await expectError(
      await request("/v1/tasks", { method: "POST", body: run }),
      400,
      "E_VALIDATION",
    );
    assert.equal(storeDump(), before);
    // A named volume is no host path; and once a node allows /srv, the service is taken.
    const volume = JSON.stringify(mounting("cache"));
    assert.equal((await request("/v1/services", { method: "POST", body: volume })).status, 201);
    await test.log.propose({
      type: "node.register",
      at: 2_000_000,
      id: "node-2",
      name: "nas",
      address: "127.0.0.2",
      port: 7420,
      arch: "x64",
      os: "linux",
      cpus: 2,
      memoryMb: 2048,
      labels: {},
      version: "test",
      hostPaths: { allowed: ["/srv"], denied: ["/var/lib/shoal"] },
    });
    assert.equal((await request("/v1/services", { method: "POST", body })).status, 201);
  });

  describe("refuses bad input and changes nothing", () => {
    const cases: [string, () => Response | Promise<Response>, number, string][] = [
      [
        "malformed JSON",
        () => request("/v1/services", { method: "POST", body: "{name: web" }),
        400,
        "E_BAD_JSON",
      ],
      [
        "an unknown field",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x", colour: "red" }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "negative replicas",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x", replicas: -1 }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "absurd replicas",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x", replicas: 1e9 }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a port out of range",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({
              ...web,
              name: "x",
              containers: [{ name: "c", image: "i", ports: [{ container: 70000 }] }],
            }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a missing token",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x" }),
            headers: { authorization: "" },
          }),
        401,
        "E_UNAUTHORIZED",
      ],
      [
        "a wrong token",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x" }),
            headers: { authorization: "Bearer nope" },
          }),
        401,
        "E_UNAUTHORIZED",
      ],
      [
        "a 2 MiB body",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x", pad: "a".repeat(2 * 1024 * 1024) }),
          }),
        413,
        "E_BODY_TOO_LARGE",
      ],
      [
        "a bad scale",
        () =>
          request("/v1/services/dup", {
            method: "PATCH",
            body: JSON.stringify({ replicas: "many" }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown task state filter",
        () => request("/v1/tasks?state=dancing"),
        400,
        "E_VALIDATION",
      ],
      ...[
        "/v1/services?bogus=1",
        "/v1/services/dup?bogus=1",
        "/v1/nodes?x=1",
        "/v1/nodes/node-1?x=1",
        "/v1/cluster?x=1",
        "/v1/cluster?consistency=eventual",
        "/v1/task-definitions?x=1",
        "/v1/task-definitions/dup?consistency=local",
        "/v1/task-definitions/dup/1?x=1",
        "/v1/tasks?x=1",
        "/v1/tasks/task-1?x=1",
        "/v1/events?since=&follow=false",
        "/v1/events?since=1e3&follow=false",
        "/v1/events?since=0x10&follow=false",
        "/v1/events?since=-1&follow=false",
        "/v1/events?since=1.5&follow=false",
        "/v1/events?follow=false&x=1",
      ].map((path): [string, () => Response | Promise<Response>, number, string] => [
        `the query of GET ${path}`,
        () => request(path),
        400,
        "E_VALIDATION",
      ]),
      [
        "a malformed Last-Event-ID",
        () => request("/v1/events?follow=false", { headers: { "last-event-id": "1e3" } }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown query parameter on a create",
        () =>
          request("/v1/services?dryRun=1", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "x" }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown query parameter on a scale",
        () =>
          request("/v1/services/dup?force=1", {
            method: "PATCH",
            body: JSON.stringify({ replicas: 1 }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown query parameter on a delete",
        () => request("/v1/services/dup?force=1", { method: "DELETE" }),
        400,
        "E_VALIDATION",
      ],
      [
        "a body on a delete",
        () =>
          request("/v1/services/dup", { method: "DELETE", body: JSON.stringify({ force: true }) }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown field in a task stop",
        () =>
          request("/v1/tasks/task-1/stop", {
            method: "POST",
            body: JSON.stringify({ reason: "x", force: true }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown query parameter on a task stop",
        () => request("/v1/tasks/task-1/stop?force=1", { method: "POST" }),
        400,
        "E_VALIDATION",
      ],
      [
        "an unknown query parameter on a task run",
        () =>
          request("/v1/tasks?x=1", {
            method: "POST",
            body: JSON.stringify({ containers: [{ name: "once", image: "i" }] }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a constraint it cannot read",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "c1", placement: { constraints: ["zone = x"] } }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a global service with a replica count",
        () =>
          request("/v1/services", {
            method: "POST",
            body: JSON.stringify({ ...web, name: "g1", mode: "global" }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a deployment that could never move",
        () =>
          request("/v1/services/dup", {
            method: "PATCH",
            body: JSON.stringify({ deployment: { maxPercent: 100, minHealthyPercent: 100 } }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a change of mode",
        () =>
          request("/v1/services/dup", {
            method: "PATCH",
            body: JSON.stringify({ mode: "global" }),
          }),
        400,
        "E_VALIDATION",
      ],
      [
        "a drain of an unknown node",
        () => request("/v1/nodes/nope/drain", { method: "POST" }),
        404,
        "E_NOT_FOUND",
      ],
      [
        "an empty label change",
        () => request("/v1/nodes/node-1/labels", { method: "POST", body: "{}" }),
        400,
        "E_VALIDATION",
      ],
    ];
    before(async () => {
      const response = await request("/v1/services", {
        method: "POST",
        body: JSON.stringify({ ...web, name: "dup" }),
      });
      assert.equal(response.status, 201);
    });
    for (const [name, send, status, code] of cases) {
      it(`${name}: ${status} ${code}`, async () => {
        const before = storeDump();
        await expectError(await send(), status, code);
        assert.equal(storeDump(), before);
      });
    }
    it("a duplicate service name: 409 E_CONFLICT", async () => {
      const before = storeDump();
      await expectError(
        await request("/v1/services", {
          method: "POST",
          body: JSON.stringify({ ...web, name: "dup" }),
        }),
        409,
        "E_CONFLICT",
      );
      assert.equal(storeDump(), before);
    });
    it("a rollback with no earlier revision: 409 E_CONFLICT", async () => {
      // The state machine refuses it: the refused command takes a log index and nothing else.
      const before = storeDump().replace(/^\[\d+,/, "[");
      await expectError(
        await request("/v1/services/dup/rollback", { method: "POST" }),
        409,
        "E_CONFLICT",
      );
      assert.equal(storeDump().replace(/^\[\d+,/, "["), before);
    });
    it("names the field path of a validation error", async () => {
      const body = JSON.stringify({
        ...web,
        name: "x",
        containers: [{ name: "c", image: "i", ports: [{ container: 70000 }] }],
      });
      const error = await expectError(
        await request("/v1/services", { method: "POST", body }),
        400,
        "E_VALIDATION",
      );
      assert.match(error.message, /containers\.0\.ports\.0\.container/);
    });
  });
});
