// A one-node agent whose data dir is a 12 MB tmpfs that fills up: first its writes are refused
// at the reserve, then a write the reserve let through meets a disk with no room at all (ENOSPC).
// The agent stays up throughout (the same process), answers health and reads, refuses writes
// with E_NO_SPACE and says why in `shoal status`; once the tmpfs grows and the filler goes, it
// takes writes again without a restart, and every write it acknowledged is there.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { promisify } from "node:util";
import { limits } from "../../src/core/limits.ts";
import type { DiskStatus, ShoalEvent } from "../../src/core/types.ts";
import { AgentProcess } from "../../src/testing/agent-process.ts";
import { Tmpfs, tmpfsUnavailable } from "../../src/testing/tmpfs.ts";
import { waitFor } from "../../src/testing/wait.ts";

const shoalBin = join(import.meta.dirname, "..", "..", "bin", "shoal");
const skip = tmpfsUnavailable() ?? false;

let disk: Tmpfs | null = null;
let agent: AgentProcess | null = null;

before(async () => {
  if (skip) return;
  disk = Tmpfs.mount(12 * 1024 * 1024);
  const dataDir = join(disk.path, "data");
  mkdirSync(dataDir);
  agent = new AgentProcess({ dataDir });
  await agent.start();
});

after(async () => {
  try {
    await agent?.dispose();
  } finally {
    disk?.unmount();
  }
});

/** A service of no replicas (nothing to run) whose env makes its command `bytes` large. */
function bigService(name: string, bytes: number) {
  const values = Math.ceil(bytes / limits.envValueBytesMax);
  const env: Record<string, string> = {};
  for (let i = 0; i < values; i++) env[`V${i}`] = "x".repeat(limits.envValueBytesMax - 64);
  return { name, replicas: 0, containers: [{ name: "c", image: "shoal-test/busybox:1", env }] };
}

interface Answer {
  status: number;
  code: string | null;
  message: string;
}

async function create(name: string, bytes: number): Promise<Answer> {
  const response = await live().request("POST", "/v1/services", bigService(name, bytes));
  const body = (await response.json()) as { error?: { code: string; message: string } };
  return {
    status: response.status,
    code: body.error?.code ?? null,
    message: body.error?.message ?? "",
  };
}

function live(): AgentProcess {
  assert.ok(agent, "the agent runs");
  return agent;
}

async function health(): Promise<{ status: string; disk: DiskStatus }> {
  const response = await live().fetch(`${live().base}/v1/health`);
  assert.equal(response.status, 200, "health answers while the disk is full");
  return (await response.json()) as { status: string; disk: DiskStatus };
}

async function serviceNames(): Promise<string[]> {
  const services = (await live().json("GET", "/v1/services")) as { name: string }[];
  return services.map((service) => service.name);
}

async function events(): Promise<ShoalEvent[]> {
  const response = await live().request("GET", "/v1/events?since=0&follow=false");
  const text = await response.text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => JSON.parse(line.slice(5)) as ShoalEvent);
}

async function shoalStatus(): Promise<{ code: number; stdout: string }> {
  const env = {
    ...process.env,
    SHOAL_ADDR: `127.0.0.1:${live().port}`,
    SHOAL_API_TOKEN: live().token,
    SHOAL_CA: join(live().dataDir, "ca.pem"),
  };
  try {
    const { stdout } = await promisify(execFile)(shoalBin, ["status"], { env });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, stdout: `${failed.stdout ?? ""}${failed.stderr ?? ""}` };
  }
}

/** Names of the writes the agent acknowledged (201): each must be there at the end. */
const acknowledged: string[] = [];
/** The write the disk had no room for, and the last event before it was held. */
let held: { name: string; answer: Promise<Answer>; eventsBefore: number } | null = null;

it("refuses writes at the reserve, keeps serving, and records the full disk", {
  skip,
}, async () => {
  const pid = live().pid;
  const fresh = await health();
  assert.equal(fresh.disk.status, "ok", "a fresh data dir on 12 MB takes writes");
  let refused: Answer | null = null;
  for (let i = 0; i < 500 && refused === null; i++) {
    const answer = await create(`fill-${i}`, 96 * 1024);
    if (answer.status === 201) acknowledged.push(`fill-${i}`);
    else refused = answer;
  }
  assert.ok(acknowledged.length >= 10, `only ${acknowledged.length} writes fit`);
  assert.deepEqual(refused && { status: refused.status, code: refused.code }, {
    status: 507,
    code: "E_NO_SPACE",
  });
  assert.match(refused?.message ?? "", /below its reserve/);
  const short = await health();
  assert.equal(short.disk.status, "full");
  assert.ok((short.disk.freeBytes ?? Infinity) < limits.diskReserveBytes);
  assert.deepEqual(await serviceNames(), [...acknowledged].sort(), "reads answer");
  // The node's own report passes the reserve: the event is in the log while the disk is full.
  await waitFor("the node.disk_full event", async () =>
    (await events()).some((event) => event.type === "node.disk_full"),
  );
  assert.equal(live().pid, pid);
});

it("holds a write the disk has no room for (ENOSPC), refuses the next, and stays up", {
  skip,
}, async () => {
  assert.ok(disk);
  const tmpfs = disk;
  const pid = live().pid;
  // Each round the disk has room, the agent has just measured it, and then, before it
  // measures again (every diskSpaceCheckMs), the filler takes all of it and a large write
  // arrives: the reserve lets it through and the disk has no room for it. (A write that fits in
  // space a -wal file already holds goes through; the next round tries again.)
  for (let round = 0; round < 40 && held === null; round++) {
    tmpfs.remove("filler");
    tmpfs.ensureFree(limits.diskReserveBytes + 3 * 1024 * 1024);
    await waitFor("the agent to see room again", async () => (await health()).disk.status === "ok");
    const name = `big-${round}`;
    const eventsBefore = (await events()).at(-1)?.seq ?? 0;
    await health();
    tmpfs.fill("filler");
    const attempt = create(name, 960 * 1024);
    const settled = await Promise.race([
      attempt,
      waitFor("the log to be held", async () => (await health()).disk.logHeld, 3000).then(
        () => null,
      ),
    ]).catch(() => attempt);
    if (settled === null) held = { name, answer: attempt, eventsBefore };
    else if (settled.status === 201) acknowledged.push(name);
  }
  assert.ok(held, "a write met a disk with no room past the reserve");
  assert.equal(tmpfs.freeBytes(), 0);
  // Held for several retries: the agent is the same process, answers health and reads.
  await new Promise((resolve) => setTimeout(resolve, 3 * limits.diskFullRetryMs));
  assert.equal(live().pid, pid, "the agent did not crash");
  const stuck = await health();
  assert.deepEqual(
    [stuck.disk.status, stuck.disk.logHeld, stuck.disk.freeBytes],
    ["full", true, 0],
  );
  for (const name of acknowledged) assert.ok((await serviceNames()).includes(name));
  const refused = await create("while-held", 1024);
  assert.deepEqual([refused.status, refused.code], [507, "E_NO_SPACE"]);
  const status = await shoalStatus();
  assert.equal(status.code, 0, status.stdout);
  assert.match(
    status.stdout,
    /^this node's disk:\s+FULL \(0\.0 MB free, reserve 4\.0 MB\): this node refuses writes \(E_NO_SPACE\)/m,
  );
  assert.match(status.stdout, /its log waits for space/);
});

it("takes writes again once space returns, without a restart, with every acknowledged write", {
  skip,
}, async () => {
  assert.ok(disk);
  const pid = live().pid;
  disk.resize(64 * 1024 * 1024);
  disk.remove("filler");
  await waitFor("the disk to read ok", async () => (await health()).disk.status === "ok", 15_000);
  assert.ok(held);
  // The held write was kept, whole: it is applied, whatever its caller heard meanwhile (an
  // answer that came after the proposal's timeout says it may still be applied).
  const heldAnswer = await held.answer;
  if (heldAnswer.status !== 201) assert.equal(heldAnswer.code, "E_NOT_READY", heldAnswer.message);
  const after = await waitFor("a write to be taken again", async () => {
    const answer = await create("after", 1024);
    return answer.status === 201 ? answer : null;
  });
  assert.equal(after.status, 201);
  acknowledged.push("after");
  const names = await serviceNames();
  for (const name of acknowledged) assert.ok(names.includes(name), `${name} was acknowledged`);
  assert.ok(names.includes(held.name), "the held write is there too");
  assert.ok(!names.includes("while-held"), "the refused write is not");
  // The full disk is recorded (when the reserve refused, or after the spell the log could not
  // record while it lasted), and its end after the held write.
  const since = held.eventsBefore;
  const diskEvents = async () =>
    (await events()).filter((e) => e.type.startsWith("node.disk")).map((e) => [e.seq, e.type]);
  await waitFor("node.disk_ok after the held write", async () => {
    const recorded = await diskEvents();
    const last = recorded.at(-1);
    return last?.[1] === "node.disk_ok" && Number(last[0]) > since && recorded.length >= 2;
  });
  const node = ((await live().json("GET", "/v1/nodes")) as { diskFull: boolean }[])[0];
  assert.equal(node?.diskFull, false, "the node's row says its disk has room");
  const status = await shoalStatus();
  assert.match(status.stdout, /^this node's disk:\s+ok/m);
  assert.equal(live().pid, pid, "no restart");
});
