// Failover on the lab: a node's host is killed (agent and engine, as when a Pi loses power). The
// leader marks it down once it has been silent for nodeDownAfterMs, and its tasks run again on
// the surviving nodes, while a global service shrinks with the fleet; when the host comes back it
// takes work again, the global service grows back onto it, and no task runs twice.
// Needs root, as the lab does.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  formLabFleet,
  type LabApi,
  type LabService,
  mdnsLab,
  runningTasks,
  webContainers,
} from "../../src/testing/lab-fleet.ts";
import { waitFor } from "../../src/testing/wait.ts";

const lab = mdnsLab();
const nodes = ["lab1", "lab2", "lab3"];
let api: LabApi;

before(async () => {
  api = await formLabFleet(lab, 3);
});

after(async () => {
  await lab.down();
});

const desiredRunning = (service: LabService) =>
  service.tasks.filter((t) => t.desired === "running");
const onNodes = (service: LabService) => new Set(runningTasks(service).map((t) => t.nodeName));

describe("failover on the lab", () => {
  it("runs a killed host's tasks on the survivors, and takes the host back without duplicates", async () => {
    await api.call("lab1", "POST", "/v1/services", {
      name: "web",
      replicas: 3,
      containers: [
        { name: "httpd", image: "shoal-test/busybox:1", command: ["httpd", "-f", "-p", "8080"] },
      ],
    });
    await api.call("lab1", "POST", "/v1/services", {
      name: "everywhere",
      mode: "global",
      containers: webContainers(),
    });
    const spread = await waitFor("3 tasks running, one per node", async () => {
      const service = await api.service("lab1", "web");
      return runningTasks(service).length === 3 && onNodes(service).size === 3 ? service : null;
    });
    await waitFor("the global service on every node", async () => {
      const service = await api.service("lab1", "everywhere");
      return runningTasks(service).length === 3 && onNodes(service).size === 3;
    });
    const leader = await api.leaderName("lab1");
    // Heartbeats carry each machine's use to the leader, which shows it with the nodes.
    await waitFor("every node's usage on the leader", async () => {
      type WithUsage = { usage: { load1: number; memoryFreeMb: number; at: number } | null };
      const list = await api.get<WithUsage[]>(leader, "/v1/nodes");
      const fresh = list.filter(
        (n) => n.usage && n.usage.memoryFreeMb > 0 && Date.now() - n.usage.at < 5000,
      );
      return fresh.length === 3;
    });
    const victim = nodes.find((n) => n !== leader) ?? "lab3";
    const survivor = nodes.find((n) => n !== victim && n !== leader) ?? leader;
    const lostTask = runningTasks(spread).find((t) => t.nodeName === victim);
    assert.ok(lostTask, `${victim} runs a task`);

    assert.equal(
      await api.eventCount(survivor, "node.down"),
      0,
      "no node was marked down while the fleet formed",
    );
    const killedAt = Date.now();
    await lab.kill(victim);
    const replaced = await waitFor(`${victim}'s task to run elsewhere`, async () => {
      const service = await api.service(survivor, "web").catch(() => null);
      if (!service) return null;
      const elsewhere = runningTasks(service).filter((t) => t.nodeName !== victim);
      return elsewhere.length === 3 ? service : null;
    });
    const elapsed = Date.now() - killedAt;
    console.log(`${victim} killed: its task ran again on a survivor after ${elapsed} ms`);
    const list = await api.nodes(survivor);
    assert.equal(list.find((n) => n.name === victim)?.status, "down");
    assert.equal(
      replaced.tasks.find((t) => t.id === lostTask.id),
      undefined,
      "the lost task is no longer active",
    );
    const shrunk = await api.service(survivor, "everywhere");
    assert.equal(desiredRunning(shrunk).length, 2, "the global service shrank with the fleet");
    assert.ok(!onNodes(shrunk).has(victim));

    await lab.start(victim);
    await waitFor(`${victim} to be ready again`, async () => {
      const list = await api.nodes(survivor);
      return list.find((n) => n.name === victim)?.status === "ready" ? list : null;
    });
    const grown = await waitFor("the global service back on every node", async () => {
      const service = await api.service(survivor, "everywhere");
      return runningTasks(service).length === 3 && onNodes(service).size === 3 ? service : null;
    });
    assert.equal(desiredRunning(grown).length, 3, "one global task per node, none twice");
    // Long enough for the returning node to reconcile and the scheduler to see it.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(
      await api.eventCount(survivor, "node.down"),
      1,
      "only the killed host was marked down",
    );
    const settled = await api.service(survivor, "web");
    assert.equal(desiredRunning(settled).length, 3, "no duplicates");
    assert.equal(runningTasks(settled).length, 3);
    assert.equal(desiredRunning(await api.service(survivor, "everywhere")).length, 3);
  });
});
