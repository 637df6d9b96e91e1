// Scheduling on the lab: rolling deployments (a good one never below its healthy floor, a
// broken one rolled back by itself), a drain that keeps the service at full count, and a
// partitioned node that keeps serving and restarts a crashed container on its own. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { labIndex, nodeAddress } from "../../src/testing/lab.ts";
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
let api: LabApi;

before(async () => {
  api = await formLabFleet(lab, 3);
});

after(async () => {
  await lab.down();
});

/** Samples the service until `done` holds, recording the fewest tasks running at any sample. */
async function watch(
  name: string,
  done: (service: LabService) => boolean,
  timeoutMs = 60_000,
): Promise<{ fewestRunning: number; last: LabService }> {
  let fewestRunning = Number.POSITIVE_INFINITY;
  const last = await waitFor(
    `${name} to settle`,
    async () => {
      const service = await api.service("lab1", name);
      fewestRunning = Math.min(fewestRunning, runningTasks(service).length);
      return done(service) ? service : null;
    },
    timeoutMs,
    50,
  );
  return { fewestRunning, last };
}

const activeOn = (service: LabService, node: string) =>
  service.tasks.filter((t) => t.desired === "running" && t.nodeName === node);

describe("scheduling on the lab", () => {
  it("rolls a good revision out without dropping below the desired count", async () => {
    await api.call("lab1", "POST", "/v1/services", {
      name: "roll",
      replicas: 3,
      containers: webContainers(),
    });
    await watch("roll", (s) => runningTasks(s).length === 3);
    await api.call("lab1", "PATCH", "/v1/services/roll", { containers: webContainers({ V: "2" }) });
    const { fewestRunning, last } = await watch(
      "roll",
      (s) => s.deployments[0]?.status === "completed",
    );
    assert.ok(fewestRunning >= 3, `at one moment only ${fewestRunning} tasks ran`);
    assert.deepEqual(
      runningTasks(last).map((t) => t.taskDefinition),
      ["roll:2", "roll:2", "roll:2"],
    );
  });

  it("rolls a broken revision back by itself, keeping the old tasks running", async () => {
    const broken = [{ ...webContainers()[0]!, image: "shoal-test/no-such-image:1" }];
    await api.call("lab1", "PATCH", "/v1/services/roll", { containers: broken });
    const { fewestRunning, last } = await watch(
      "roll",
      (s) => s.deployments[1]?.status === "rolled_back" && s.deployments[0]?.status === "completed",
      90_000,
    );
    assert.ok(fewestRunning >= 3, `at one moment only ${fewestRunning} tasks ran`);
    assert.equal(last.taskDefinition, "roll:2");
    assert.equal(last.deployments[0]?.toRevision, 2);
    assert.deepEqual(
      runningTasks(last).map((t) => t.taskDefinition),
      ["roll:2", "roll:2", "roll:2"],
    );
    assert.ok((await api.eventCount("lab1", "deployment.rollback")) >= 1);
  });

  it("drains a node: it ends with no tasks while the service stays at full count", async () => {
    const before = await api.service("lab1", "roll");
    const node = runningTasks(before)[0]?.nodeName;
    assert.ok(node, "a node runs a task of roll");
    await api.call("lab1", "POST", `/v1/nodes/${node}/drain`);
    const { fewestRunning } = await watch("roll", (s) => {
      return activeOn(s, node).length === 0 && runningTasks(s).length === 3;
    });
    assert.ok(fewestRunning >= 3, `at one moment only ${fewestRunning} tasks ran`);
    try {
      // Its old tasks stop once their replacements run: then nothing is left on the node.
      await waitFor(`${node} to run no task`, async () => {
        const tasks = await api.get<{ state: string }[]>("lab1", `/v1/tasks?node=${node}`);
        return tasks.every((t) => ["stopped", "failed", "lost"].includes(t.state));
      });
      const nodes = await api.nodes("lab1");
      assert.equal(nodes.find((n) => n.name === node)?.status, "draining");
    } finally {
      await api.call("lab1", "POST", `/v1/nodes/${node}/activate`);
    }
  });

  it("keeps a partitioned node serving, restarting its crashed container, and heals to the desired count", async () => {
    await api.call("lab1", "DELETE", "/v1/services/roll");
    await api.call("lab1", "POST", "/v1/services", {
      name: "cut",
      replicas: 3,
      containers: webContainers(),
    });
    const spread = await watch(
      "cut",
      (s) => new Set(runningTasks(s).map((t) => t.nodeName)).size === 3,
    );
    const leader = await api.leaderName("lab1");
    const victim = ["lab1", "lab2", "lab3"].find((n) => n !== leader) ?? "lab3";
    const survivor = ["lab1", "lab2", "lab3"].find((n) => n !== victim && n !== leader) ?? leader;
    const mine = spread.last.tasks.find((t) => t.nodeName === victim);
    const containerId = mine?.containers[0]?.containerId;
    const port = mine?.containers[0]?.ports[0]?.host;
    assert.ok(containerId && port, `${victim} runs a task with a published port`);
    const answers = async (hostPort: number) => {
      const url = `http://${nodeAddress(labIndex(victim))}:${hostPort}/`;
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      return response !== null;
    };
    assert.ok(await answers(port), "the task answers HTTP before the partition");

    await lab.partition(victim);
    try {
      await waitFor(`${victim} to be marked down`, async () => {
        const list = await api.nodes(survivor);
        return list.find((n) => n.name === victim)?.status === "down";
      });
      await watch("cut", (s) => runningTasks(s).filter((t) => t.nodeName !== victim).length === 3);
      assert.ok(await answers(port), "cut off, the node still serves its container");
      // A crash while cut off: the node restarts the container itself.
      const killed = await lab.exec(victim, ["docker", "kill", containerId]);
      assert.equal(killed.code, 0, killed.stderr);
      // Started again, the same container is published on a port the engine picks anew.
      await waitFor(
        "the crashed container to answer again",
        async () => {
          const published = await lab.exec(victim, ["docker", "port", containerId, "8080/tcp"]);
          const again = Number(/:(\d+)\s*$/m.exec(published.stdout)?.[1] ?? 0);
          return again > 0 && (await answers(again));
        },
        20_000,
        200,
      );
    } finally {
      await lab.heal();
    }
    await waitFor(`${victim} to be ready again`, async () => {
      const list = await api.nodes(survivor);
      return list.find((n) => n.name === victim)?.status === "ready";
    });
    const healed = await watch("cut", (s) => {
      const active = s.tasks.filter((t) => t.desired === "running");
      return active.length === 3 && runningTasks(s).length === 3;
    });
    // Its replaced task's container is gone from the healed node.
    await waitFor(`${victim} to stop the replaced task's container`, async () => {
      const listed = await lab.exec(victim, ["docker", "ps", "-q", "--no-trunc"]);
      return !listed.stdout.includes(containerId);
    });
    assert.equal(healed.last.tasks.filter((t) => t.desired === "running").length, 3);
  });
});
