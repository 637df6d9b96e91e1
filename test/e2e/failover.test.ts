// Failover on the lab: a node's host is killed (agent and engine, as when a Pi loses power). The
// leader marks it down once it has been silent for nodeDownAfterMs, and its tasks run again on
// the surviving nodes; when the host comes back it takes work again, and no task runs twice.
// Needs root, as the lab does.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../../src/testing/agent-process.ts";
import { Lab, labDataDir } from "../../src/testing/lab.ts";

const lab = new Lab({ waitSeconds: 45, agentArgs: ["--mdns-interface", "{address}"] });
const nodes = ["lab1", "lab2", "lab3"];
let apiToken = "";

interface TaskView {
  id: string;
  nodeName: string | null;
  desired: string;
  state: string;
}

interface ServiceView {
  runningCount: number;
  tasks: TaskView[];
}

async function get<T>(node: string, path: string): Promise<T> {
  const response = await fetch(`${lab.base(node)}${path}`, {
    headers: { authorization: `Bearer ${apiToken}` },
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(response.status, 200, `${path} on ${node}`);
  return (await response.json()) as T;
}

/** How many times the event log says a node was marked down. */
async function downEvents(node: string): Promise<number> {
  const response = await fetch(`${lab.base(node)}/v1/events?follow=false`, {
    headers: { authorization: `Bearer ${apiToken}` },
    signal: AbortSignal.timeout(5000),
  });
  return (await response.text()).split('"type":"node.down"').length - 1;
}

const web = (node: string) => get<ServiceView>(node, "/v1/services/web?consistency=leader");
const running = (service: ServiceView) =>
  service.tasks.filter((t) => t.desired === "running" && t.state === "running");

before(async () => {
  await lab.up(3, { agents: 1 });
  const joinToken = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
  apiToken = lab.apiToken("lab1");
  await lab.start("lab2", { agentArgs: ["--token", joinToken] });
  await lab.start("lab3", { agentArgs: ["--token", joinToken] });
  await waitFor("3 voters", async () => {
    const view = await get<{ voters: string[] }>("lab1", "/v1/cluster").catch(() => null);
    return view?.voters.length === 3 ? view : null;
  });
  // Placed before every engine answers, the tasks would not spread over the three nodes.
  await waitFor("3 nodes ready with their engines", async () => {
    type NodeView = { status: string; engineReady: boolean };
    const list = await get<NodeView[]>("lab1", "/v1/nodes").catch(() => []);
    const ready = list.filter((n) => n.status === "ready" && n.engineReady);
    return ready.length === 3 ? list : null;
  });
});

after(async () => {
  await lab.down();
});

describe("failover on the lab", () => {
  it("runs a killed host's tasks on the survivors, and takes the host back without duplicates", async () => {
    const created = await fetch(`${lab.base("lab1")}/v1/services`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "web",
        replicas: 3,
        containers: [
          { name: "httpd", image: "shoal-test/busybox:1", command: ["httpd", "-f", "-p", "8080"] },
        ],
      }),
    });
    assert.equal(created.status, 201);
    const spread = await waitFor("3 tasks running, one per node", async () => {
      const service = await web("lab1");
      const on = new Set(running(service).map((t) => t.nodeName));
      return running(service).length === 3 && on.size === 3 ? service : null;
    });
    const { leader } = await get<{ leader: { name: string } }>("lab1", "/v1/cluster");
    const victim = nodes.find((n) => n !== leader.name) ?? "lab3";
    const survivor = nodes.find((n) => n !== victim && n !== leader.name) ?? leader.name;
    const lostTask = running(spread).find((t) => t.nodeName === victim);
    assert.ok(lostTask, `${victim} runs a task`);

    assert.equal(await downEvents(survivor), 0, "no node was marked down while the fleet formed");
    const killedAt = Date.now();
    await lab.kill(victim);
    const replaced = await waitFor(`${victim}'s task to run elsewhere`, async () => {
      const service = await web(survivor).catch(() => null);
      if (!service) return null;
      const elsewhere = running(service).filter((t) => t.nodeName !== victim);
      return elsewhere.length === 3 ? service : null;
    });
    const elapsed = Date.now() - killedAt;
    console.log(`${victim} killed: its task ran again on a survivor after ${elapsed} ms`);
    const list = await get<{ name: string; status: string }[]>(survivor, "/v1/nodes");
    assert.equal(list.find((n) => n.name === victim)?.status, "down");
    assert.equal(
      replaced.tasks.find((t) => t.id === lostTask.id),
      undefined,
      "the lost task is no longer active",
    );

    await lab.start(victim);
    await waitFor(`${victim} to be ready again`, async () => {
      const list = await get<{ name: string; status: string }[]>(survivor, "/v1/nodes");
      return list.find((n) => n.name === victim)?.status === "ready" ? list : null;
    });
    // Long enough for the returning node to reconcile and the scheduler to see it.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(await downEvents(survivor), 1, "only the killed host was marked down");
    const settled = await web(survivor);
    assert.equal(settled.tasks.filter((t) => t.desired === "running").length, 3, "no duplicates");
    assert.equal(running(settled).length, 3);
  });
});
