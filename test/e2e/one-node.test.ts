// The whole path on one node, on real parts: a `shoal agent` process, its libSQL files, the real
// Docker engine and HTTP. Bounds are generous; speed goals live in `npm run bench`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Task } from "../../src/core/types.ts";
import { AgentProcess, docker } from "../../src/testing/agent-process.ts";
import { waitFor } from "../../src/testing/wait.ts";

const image = "shoal-test/busybox:1";
const web = {
  name: "web",
  replicas: 3,
  containers: [
    {
      name: "httpd",
      image,
      command: [
        "sh",
        "-c",
        "mkdir -p /www && echo hello from shoal > /www/index.html && exec httpd -f -p 80 -h /www",
      ],
      ports: [{ container: 80, host: 0 }],
      memoryMb: 32,
      cpu: 0.1,
    },
  ],
};

let agent: AgentProcess;

before(async () => {
  agent = new AgentProcess();
  await agent.start();
});
after(async () => {
  await agent?.dispose();
});

async function tasks(query = ""): Promise<Task[]> {
  return (await agent.json("GET", `/v1/tasks${query}`)) as Task[];
}

async function runningTasks(service: string, count: number): Promise<Task[]> {
  return waitFor(`${count} running task(s) of ${service}`, async () => {
    const running = (await tasks(`?service=${service}&state=running`)).filter(
      (t) => t.desired === "running",
    );
    return running.length === count ? running : null;
  });
}

/**
 * POSTs with node:http, which, unlike fetch, keeps a response that arrives before the whole body
 * was sent (the server refuses an oversized body from its Content-Length without reading it).
 */
function postEarlyAnswer(
  url: string,
  token: string,
  body: string,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(url, {
      method: "POST",
      ca: [ca],
      checkServerIdentity: () => undefined,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      },
    });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      let text = "";
      response.on("data", (chunk: Buffer) => {
        text += chunk.toString();
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
    });
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    request.end(body);
  });
}

function hostPort(task: Task): number {
  const port = task.containers[0]?.ports[0]?.host;
  assert.ok(port, `task ${task.id} reports no host port`);
  return port;
}

describe("one node on the real engine", () => {
  it("runs 3 replicas whose containers answer HTTP on their own host ports", async () => {
    const response = await agent.request("POST", "/v1/services", web);
    assert.equal(response.status, 201);
    const running = await runningTasks("web", 3);
    const ports = running.map(hostPort);
    assert.equal(new Set(ports).size, 3, "every task has its own host port");
    for (const port of ports) {
      const page = await waitFor(`HTTP on port ${port}`, async () =>
        (await fetch(`http://127.0.0.1:${port}/`)).text(),
      );
      assert.match(page, /hello from shoal/);
    }
    assert.equal(agent.containers().length, 3);
  });

  it("scales to 1 by removing exactly 2 containers", async () => {
    const before = agent.containers();
    await agent.json("PATCH", "/v1/services/web", { replicas: 1 });
    const after = await waitFor("2 containers to go", async () => {
      const now = agent.containers(true);
      return now.length === 1 ? now : null;
    });
    assert.ok(
      before.includes(after[0] ?? ""),
      "the remaining container is one of the original three",
    );
    await runningTasks("web", 1);
  });

  it("marks a killed container's task failed and runs a replacement", async () => {
    const [task] = await runningTasks("web", 1);
    assert.ok(task);
    const containerId = task.containers[0]?.containerId;
    assert.ok(containerId);
    docker("kill", containerId);
    const failed = await waitFor("the task to be marked failed", async () => {
      const current = (await agent.json("GET", `/v1/tasks/${task.id}`)) as Task;
      return current.state === "failed" ? current : null;
    });
    assert.equal(failed.exitCode, 137);
    assert.match(failed.reason, /exited with code 137/);
    const [replacement] = await runningTasks("web", 1);
    assert.notEqual(replacement?.id, task.id);
    assert.equal(agent.containers().length, 1);
  });

  it("adopts its containers after kill -9 and keeps every acknowledged change", async () => {
    await agent.json("PATCH", "/v1/services/web", { replicas: 2 });
    const running = await runningTasks("web", 2);
    const containersBefore = agent.containers();
    await agent.json("POST", "/v1/services", {
      name: "acked",
      replicas: 0,
      containers: [{ name: "c", image }],
    });
    await agent.kill("SIGKILL");
    await agent.start();
    const services = (await agent.json("GET", "/v1/services")) as {
      name: string;
      replicas: number;
    }[];
    assert.deepEqual(services.map((s) => [s.name, s.replicas]).sort(), [
      ["acked", 0],
      ["web", 2],
    ]);
    // Give the agent a few reconcile rounds to prove it neither duplicates nor drops containers.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.deepEqual(agent.containers(), containersBefore);
    const after = await runningTasks("web", 2);
    assert.deepEqual(after.map((t) => t.id).sort(), running.map((t) => t.id).sort());
  });

  it("refuses bad requests over real HTTP and changes nothing", async () => {
    const snapshot = async () =>
      JSON.stringify([
        await agent.json("GET", "/v1/services"),
        await agent.json("GET", "/v1/task-definitions"),
      ]);
    const before = await snapshot();
    const body = JSON.stringify({
      name: "big",
      containers: [{ name: "c", image }],
      pad: "x".repeat(2 * 1024 * 1024),
    });
    const big = await postEarlyAnswer(
      `${agent.base}/v1/services`,
      agent.token,
      body,
      readFileSync(join(agent.dataDir, "ca.pem"), "utf8"),
    );
    assert.equal(big.status, 413);
    assert.equal(
      (JSON.parse(big.body) as { error: { code: string } }).error.code,
      "E_BODY_TOO_LARGE",
    );
    const wrongToken = await agent.fetch(`${agent.base}/v1/services`, {
      headers: { authorization: "Bearer wrong" },
    });
    assert.equal(wrongToken.status, 401);
    const malformed = await agent.fetch(`${agent.base}/v1/services`, {
      method: "POST",
      headers: { authorization: `Bearer ${agent.token}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(malformed.status, 400);
    const duplicate = await agent.request("POST", "/v1/services", {
      name: "web",
      containers: [{ name: "c", image }],
    });
    assert.equal(duplicate.status, 409);
    assert.equal(await snapshot(), before);
  });

  it("fails tasks of a missing image with a reason naming it, and backs off", async () => {
    const missing = "shoal-test/missing:1";
    await agent.json("POST", "/v1/services", {
      name: "ghost",
      replicas: 1,
      containers: [{ name: "c", image: missing }],
    });
    const first = await waitFor("a failed task", async () => {
      const failed = await tasks("?service=ghost&state=failed");
      return failed[0] ?? null;
    });
    assert.equal(first.reason, `image not found: ${missing}`);
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const failures = (await tasks("?service=ghost&state=failed")).length;
    // Backoff of 0, 1, 2, 4 s allows about 5 failures in these 6 s; a hot loop makes hundreds.
    assert.ok(failures >= 2 && failures <= 7, `${failures} failures in 6 s`);
    await agent.json("DELETE", "/v1/services/ghost");
  });
});
