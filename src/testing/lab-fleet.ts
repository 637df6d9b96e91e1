// A formed fleet on the lab for end-to-end tests and the demo: three (or more) nodes joined
// with lab1's token, every one a voter with its engine answering, and a small API client.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Lab, labDataDir, labName } from "./lab.ts";
import { waitFor } from "./wait.ts";

/** A lab whose agents find each other over mDNS on their own interface, as a real fleet does. */
export function mdnsLab(options: { agentArgs?: string[]; bin?: string } = {}): Lab {
  const agentArgs = ["--mdns-interface", "{address}", ...(options.agentArgs ?? [])];
  return new Lab({ waitSeconds: 45, agentArgs, bin: options.bin });
}

export interface LabTask {
  id: string;
  service: string | null;
  node: string | null;
  nodeName: string | null;
  desired: string;
  state: string;
  taskDefinition: string;
  containers: { containerId: string | null; ports: { container: number; host: number | null }[] }[];
}

export interface LabService {
  name: string;
  taskDefinition: string;
  runningCount: number;
  desiredCount: number;
  tasks: LabTask[];
  deployments: { id: number; status: string; fromRevision: number | null; toRevision: number }[];
}

export interface LabNodeView {
  id: string;
  name: string;
  status: string;
  engineReady: boolean;
}

export class LabApi {
  constructor(
    private readonly lab: Lab,
    readonly token: string,
  ) {}

  async call<T>(node: string, method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.lab.fetch(node, path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path} on ${node}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }

  get = <T>(node: string, path: string) => this.call<T>(node, "GET", path);

  /** A service as the leader knows it: reads after a write see the write. */
  service = (node: string, name: string) =>
    this.get<LabService>(node, `/v1/services/${name}?consistency=leader`);

  nodes = (node: string) => this.get<LabNodeView[]>(node, "/v1/nodes?consistency=leader");

  async leaderName(node: string): Promise<string> {
    const view = await this.get<{ leader: { name: string } | null }>(node, "/v1/cluster");
    assert.ok(view.leader, "the fleet has a leader");
    return view.leader.name;
  }

  /** How many events of `type` the event log holds. */
  async eventCount(node: string, type: string): Promise<number> {
    const response = await this.lab.fetch(node, "/v1/events?follow=false", {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(5000),
    });
    return (await response.text()).split(`"type":"${type}"`).length - 1;
  }
}

/** Tasks desired running that run. */
export function runningTasks(service: LabService): LabTask[] {
  return service.tasks.filter((t) => t.desired === "running" && t.state === "running");
}

/**
 * Starts lab1..labN, joins lab2.. with lab1's token, and waits for voters and ready engines
 * (on lab1..lab`engines`, all by default; the others run their agent without one).
 */
export async function formLabFleet(
  lab: Lab,
  count: number,
  options: { engines?: number } = {},
): Promise<LabApi> {
  await lab.up(count, { agents: 1, engines: options.engines });
  return joinLabFleet(lab, count, options);
}

/** On a lab that is up with lab1's agent only: joins lab2..labN and waits as formLabFleet. */
export async function joinLabFleet(
  lab: Lab,
  count: number,
  options: { engines?: number } = {},
): Promise<LabApi> {
  const engines = options.engines ?? count;
  const joinToken = readFileSync(join(labDataDir("lab1"), "join.token"), "utf8").trim();
  for (let index = 2; index <= count; index += 1) {
    await lab.start(labName(index), { agentArgs: ["--token", joinToken] });
  }
  const api = new LabApi(lab, lab.apiToken("lab1"));
  const voters = Math.min(count, 5) % 2 === 0 ? Math.min(count, 5) - 1 : Math.min(count, 5);
  await waitFor(`${voters} voters`, async () => {
    const view = await api.get<{ voters: string[] }>("lab1", "/v1/cluster").catch(() => null);
    return view?.voters.length === voters ? view : null;
  });
  // Placed before every engine answers, tasks would not spread over all the nodes.
  await waitFor(`${count} nodes ready, ${engines} with their engines`, async () => {
    const list = await api.nodes("lab1").catch(() => []);
    const ready = list.filter((n) => n.status === "ready");
    const withEngine = ready.filter((n) => n.engineReady);
    return ready.length === count && withEngine.length === engines ? list : null;
  });
  return api;
}

/** A busybox web server on container port 8080, published on a free host port per task. */
export function webContainers(env: Record<string, string> = {}) {
  return [
    {
      name: "httpd",
      image: "shoal-test/busybox:1",
      command: ["httpd", "-f", "-p", "8080"],
      ports: [{ container: 8080, host: 0 }],
      env,
    },
  ];
}
