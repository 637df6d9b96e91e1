// Ingress on the lab: every node's port 8080 reaches the service's tasks wherever they run, also
// from a node that runs none of them; and while a client sends requests to a surviving node, a
// worker's host is killed, a worker is partitioned and the service rolls out a new revision,
// without failed requests; a node where another program holds the port says so, and the others
// serve it. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { IngressClient, ingressRequest } from "../../src/testing/ingress-client.ts";
import { nodeAddress } from "../../src/testing/lab.ts";
import {
  formLabFleet,
  type LabApi,
  type LabService,
  mdnsLab,
  runningTasks,
} from "../../src/testing/lab-fleet.ts";
import { waitFor } from "../../src/testing/wait.ts";

const lab = mdnsLab();
let api: LabApi;
const nodes = ["lab1", "lab2", "lab3"];
const port = 8080;

/** A CGI script that answers after 2 s: requests still open when their task is asked to stop. */
// Its header lines end in CRLF: Node's HTTP parser takes no bare LF (busybox passes them through).
const slowScript = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nsleep 2\nhostname\n';

/** Each task's page is its container's hostname (the short container id); /cgi-bin/slow too. */
function containers(env: Record<string, string> = {}) {
  const setup = [
    "hostname > /www/index.html",
    "mkdir -p /www/cgi-bin",
    `printf '${slowScript}' > /www/cgi-bin/slow`,
    "chmod +x /www/cgi-bin/slow",
    // Stops at once on SIGTERM, as a real server does (httpd as PID 1 would ignore it): only the
    // drain keeps a request open on a task asked to stop from being cut.
    'httpd -f -p 80 -h /www & trap "exit 0" TERM; wait',
  ];
  return [
    {
      name: "httpd",
      image: "shoal-test/busybox:1",
      command: ["sh", "-c", setup.join(" && ")],
      env,
    },
  ];
}

before(async () => {
  api = await formLabFleet(lab, 3);
  await api.call("lab1", "POST", "/v1/services", {
    name: "front",
    replicas: 3,
    containers: containers(),
    ingress: [{ port, containerPort: 80, protocol: "http" }],
    drainMs: 5000,
  });
  await settled((s) => spreadOver(s) === 3);
});

after(async () => {
  await lab.down();
});

/** A service's ingress as the API shows it: per node, whether it listens and why not. */
interface Reported {
  ingress: { port: number; nodes: { name: string; listening: boolean; message: string }[] }[];
}

const spreadOver = (s: LabService) => new Set(runningTasks(s).map((t) => t.nodeName)).size;

function settled(done: (s: LabService) => boolean, timeoutMs = 60_000): Promise<LabService> {
  return waitFor(
    "front to settle",
    async () => {
      const service = await api.service("lab1", "front");
      return done(service) && runningTasks(service).length === 3 ? service : null;
    },
    timeoutMs,
    100,
  );
}

function ask(node: string): Promise<string> {
  return ingressRequest(nodeAddress(node), port);
}

/** The node of each answering container, by the short id its page shows. */
function nodeByContainer(service: LabService): Map<string, string> {
  return new Map(
    service.tasks.flatMap((t) =>
      t.containers.map((c): [string, string] => [
        (c.containerId ?? "").slice(0, 12),
        t.nodeName ?? "",
      ]),
    ),
  );
}

/** A client of `node`'s ingress port, started; GET / or a POST of `path`. */
function client(node: string, path?: string): IngressClient {
  return new IngressClient(nodeAddress(node), port, path ? { path, post: true } : {}).start();
}

async function drained(node: string): Promise<void> {
  await api.call("lab1", "POST", `/v1/nodes/${node}/drain`);
  await settled((s) => !s.tasks.some((t) => t.nodeName === node && t.state !== "stopped"));
}

describe("ingress on the lab", () => {
  it("answers on each node's port from tasks on the other nodes, also where none runs", async () => {
    for (const node of nodes) {
      await drained(node);
      try {
        const service = await api.service("lab1", "front");
        const owners = nodeByContainer(service);
        const seen = new Set<string>();
        for (let round = 0; round < 24; round++) seen.add(owners.get(await ask(node)) ?? "?");
        assert.ok(!seen.has(node) && !seen.has("?"), `${node} answered from ${[...seen]}`);
        assert.equal(seen.size, 2, `${node} reached the tasks of both other nodes: ${[...seen]}`);
      } finally {
        await api.call("lab1", "POST", `/v1/nodes/${node}/activate`);
      }
    }
  });

  // The client asks lab1, drained so that it runs none of the tasks: every answer crosses nodes.
  it("fails no request while a worker's host is killed, or partitioned", async () => {
    await drained("lab1");
    for (const [victim, cut] of [
      ["lab3", () => lab.kill("lab3")],
      ["lab2", () => lab.partition("lab2")],
    ] as const) {
      const running = client("lab1");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await cut();
      await waitFor(`${victim} to be marked down`, async () => {
        const list = await api.nodes("lab1");
        return list.find((n) => n.name === victim)?.status === "down";
      });
      await settled((s) => !s.tasks.some((t) => t.nodeName === victim && t.state === "running"));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const stats = await running.stop();
      console.log(`ingress while ${victim} is lost: ${JSON.stringify(stats)}`);
      assert.equal(stats.failed, 0, `failed requests: ${stats.failures.join("; ")}`);
      assert.ok(stats.sent > 50, `the client sent ${stats.sent} requests`);
      if (victim === "lab3") await lab.start("lab3");
      else await lab.heal();
      await waitFor(`${victim} to be ready`, async () => {
        const list = await api.nodes("lab1");
        return list.find((n) => n.name === victim)?.status === "ready";
      });
      // Back over both workers before the next loss (lab1 stays drained).
      await api.call("lab1", "POST", "/v1/services/front/rebalance");
      await settled((s) => spreadOver(s) === 2);
    }
  });

  // Slow requests are open on the old tasks when they are asked to stop: the drain lets them end.
  it("fails no request while the service rolls out a new revision", async () => {
    const running = client("lab1");
    // POSTs: a request with a body is never sent twice, so nothing but the drain saves them.
    const slow = Array.from({ length: 6 }, () => client("lab1", "/cgi-bin/slow"));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await api.call("lab1", "PATCH", "/v1/services/front", { containers: containers({ V: "2" }) });
    await settled((s) => s.deployments[0]?.status === "completed", 120_000);
    await waitFor("the old tasks to be gone", async () => {
      const service = await api.service("lab1", "front");
      return service.tasks.every((t) => t.taskDefinition === "front:2" || t.state === "stopped");
    });
    const stats = await running.stop();
    const slowStats = await Promise.all(slow.map((each) => each.stop()));
    console.log(`ingress during a rolling deployment: ${JSON.stringify(stats)}`);
    console.log(`slow requests during it: ${JSON.stringify(slowStats)}`);
    assert.equal(stats.failed, 0, `failed requests: ${stats.failures.join("; ")}`);
    for (const each of slowStats) {
      assert.equal(each.failed, 0, `failed slow requests: ${each.failures.join("; ")}`);
      assert.ok(each.sent >= 2, `a slow client sent ${each.sent} requests`);
    }
  });

  it("says where another program holds the port, and serves it through the other nodes", async () => {
    // Another program on lab2's port 8090 (busybox's nc, bounded in time; killed below).
    const holder = "timeout 300 /bin/busybox nc -l -p 8090 </dev/null >/dev/null 2>&1 & echo $!";
    const held = await lab.exec("lab2", ["sh", "-c", holder]);
    const pid = Number(held.stdout.trim());
    assert.ok(pid > 0, `the holder started: ${held.stdout}`);
    try {
      await api.call("lab1", "POST", "/v1/services", {
        name: "side",
        replicas: 1,
        containers: containers(),
        ingress: [{ port: 8090, containerPort: 80 }],
      });
      await waitFor("lab2 to report the port taken, and the others to listen", async () => {
        const side = await api.get<Reported>("lab1", "/v1/services/side?consistency=leader");
        const reports = side.ingress[0]?.nodes ?? [];
        const lab2 = reports.find((n) => n.name === "lab2");
        const others = reports.filter((n) => n.name !== "lab2");
        const taken =
          lab2?.listening === false && lab2.message === "another program holds the port";
        return taken && others.length === 2 && others.every((n) => n.listening);
      });
      for (const node of ["lab1", "lab3"]) {
        assert.ok(
          (await ingressRequest(nodeAddress(node), 8090)).length > 0,
          `${node} serves 8090`,
        );
      }
      assert.ok((await api.eventCount("lab1", "ingress.failed")) >= 1);
      const status = await lab.exec("lab1", ["bin/shoal", "status"]);
      assert.match(
        status.stdout,
        /warning: service side: node lab2 does not listen on 8090: another program holds the port/,
      );
    } finally {
      try {
        process.kill(pid);
      } catch {
        // It ended by itself.
      }
      await api.call("lab1", "DELETE", "/v1/services/side");
    }
  });
});
