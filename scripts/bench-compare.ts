// `npm run bench:compare -- REV`: the write, leader-failover and node-loss rows of `npm run bench`
// for another commit of shoal (REV, for example the commit before a refactor) and for this
// checkout, measured in one run on the same 3-node lab (root only). Fleets are taken in turn,
// REV, this, this, REV, so that the machine's drift falls on both alike. A row passes when this
// checkout is not worse than REV by more than the noise: the larger of 10 % and how far the two
// fleets of one commit read apart.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LabApi, mdnsLab } from "../src/testing/lab-fleet.ts";
import { failoverSamples, lossSamples, startFleet } from "./bench-fleet.ts";
import { type BenchRow, formatBenchRows, median } from "./bench-row.ts";
import { measureShoal } from "./bench-store.ts";

const repo = resolve(import.meta.dirname, "..");
const kills = 5;
const workerLosses = 3;
const noiseFloor = 0.1;

/**
 * The packages (path@version) REV's lockfile holds that this checkout's does not: REV runs on
 * this checkout's node_modules, which may hold more (a dependency added since), never other.
 */
function packagesNotHere(rev: string): string[] {
  const lockOf = (text: string) =>
    (JSON.parse(text) as { packages: Record<string, { version?: string }> }).packages;
  const theirs = lockOf(
    execFileSync("git", ["-C", repo, "show", `${rev}:package-lock.json`], { encoding: "utf8" }),
  );
  const ours = lockOf(readFileSync(join(repo, "package-lock.json"), "utf8"));
  return Object.entries(theirs)
    .filter(([path, entry]) => path !== "" && ours[path]?.version !== entry.version)
    .map(([path, entry]) => `${path}@${entry.version}`);
}

/** One fleet's figures; `higherIsBetter` says which way a row regresses. */
interface Figure {
  readonly name: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly value: number;
}

async function measureFleet(bin: string | undefined): Promise<Figure[]> {
  const lab = mdnsLab({ bin });
  try {
    await lab.up(3, { agents: 0 });
    const client = await startFleet(lab);
    const leader = await client.settledLeader();
    const store = await measureShoal(lab, new LabApi(lab, client.token), leader);
    const failover = await failoverSamples(lab, client, kills);
    const loss = await lossSamples(lab, client, { workers: workerLosses, leaders: 0 });
    const ms = (name: string, value: number): Figure => ({
      name,
      unit: "ms",
      higherIsBetter: false,
      value,
    });
    return [
      ms("update p50 at concurrency 1", store.update.p50Ms),
      ms("create p50 at concurrency 1", store.create.p50Ms),
      {
        name: "writes/s at concurrency 64",
        unit: "/s",
        higherIsBetter: true,
        value: store.throughput.perSecond,
      },
      ms(`leader kill -9 -> write via another node (median of ${kills})`, median(failover)),
      ms(`node loss -> replacement running (median of ${workerLosses})`, median(loss.running)),
      ms(
        `node loss -> replacement answering HTTP (median of ${workerLosses})`,
        median(loss.answering),
      ),
    ];
  } finally {
    await lab.down();
  }
}

/** A detached checkout of `rev` sharing this checkout's dependencies; removed by the caller. */
function checkout(rev: string): string {
  const missing = packagesNotHere(rev);
  if (missing.length > 0) {
    throw new Error(`${rev} needs packages this checkout lacks: ${missing.slice(0, 5).join(", ")}`);
  }
  const dir = join(mkdtempSync(join(tmpdir(), "shoal-bench-")), "tree");
  execFileSync("git", ["-C", repo, "worktree", "add", "--detach", dir, rev], { stdio: "ignore" });
  symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/** How far this checkout is worse than `rev`, as a fraction (negative: better). */
function worseBy(old: number, now: number, higherIsBetter: boolean): number {
  return higherIsBetter ? (old - now) / old : (now - old) / old;
}

function spread(a: number, b: number): number {
  return Math.abs(a - b) / Math.min(a, b);
}

function compareRows(rev: string, old: Figure[][], now: Figure[][]): BenchRow[] {
  return (old[0] ?? []).map((figure, index) => {
    const olds = old.map((fleet) => fleet[index]?.value ?? Number.NaN);
    const nows = now.map((fleet) => fleet[index]?.value ?? Number.NaN);
    const [o1 = Number.NaN, o2 = Number.NaN] = olds;
    const [n1 = Number.NaN, n2 = Number.NaN] = nows;
    const noise = Math.max(noiseFloor, spread(o1, o2), spread(n1, n2));
    const oldValue = (o1 + o2) / 2;
    const nowValue = (n1 + n2) / 2;
    const worse = worseBy(oldValue, nowValue, figure.higherIsBetter);
    const show = (values: number[]) => values.map((v) => v.toFixed(2)).join(", ");
    return {
      name: `${figure.name}: ${rev} ${show(olds)} ${figure.unit}; HEAD ${show(nows)} ${figure.unit}`,
      value: Number((worse * 100).toFixed(1)),
      unit: "% worse",
      goal: `<= ${(noise * 100).toFixed(1)} % (noise)`,
      pass: worse <= noise,
    };
  });
}

async function main(): Promise<void> {
  const rev = process.argv[2];
  if (!rev) throw new Error("usage: npm run bench:compare -- REV");
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  const dir = checkout(rev);
  try {
    const oldBin = join(dir, "bin", "shoal");
    if (!existsSync(oldBin)) throw new Error(`${rev} has no bin/shoal`);
    const old: Figure[][] = [];
    const now: Figure[][] = [];
    old.push(await measureFleet(oldBin));
    now.push(await measureFleet(undefined));
    now.push(await measureFleet(undefined));
    old.push(await measureFleet(oldBin));
    console.error(JSON.stringify({ rev, old, now }));
    console.log(formatBenchRows(compareRows(rev, old, now)));
  } finally {
    execFileSync("git", ["-C", repo, "worktree", "remove", "--force", dir], { stdio: "ignore" });
    rmSync(resolve(dir, ".."), { recursive: true, force: true });
  }
}

await main();
