// `npm run sim`: a campaign of seeded Raft simulations. `SEED=123 npm run sim` replays one seed;
// `npm run sim -- --seeds 20000 --seed-start 1` runs many, prints progress, and exits non-zero on
// the first violation with the line that replays it.
import { type RaftBugName, raftBugNames } from "../raft/types.ts";
import { runSimulation, type SimulationResult } from "./sim/simulation.ts";

interface CampaignOptions {
  readonly seedStart: number;
  readonly seeds: number;
  readonly bug: RaftBugName | null;
  readonly verbose: boolean;
}

const seedsDefault = 1000;

function parseArguments(argv: readonly string[]): CampaignOptions {
  const value = (name: string): string | undefined => {
    const position = argv.indexOf(name);
    return position === -1 ? undefined : argv[position + 1];
  };
  const fromEnvironment = process.env.SEED;
  const bug = value("--bug") ?? null;
  if (bug !== null && !raftBugNames.includes(bug as RaftBugName)) {
    throw new Error(`unknown --bug ${bug}; one of ${raftBugNames.join(", ")}`);
  }
  if (fromEnvironment !== undefined) {
    return {
      seedStart: parseSeed(fromEnvironment),
      seeds: 1,
      bug: bug as RaftBugName | null,
      verbose: true,
    };
  }
  return {
    seedStart: parseSeed(value("--seed-start") ?? "1"),
    seeds: parseSeed(value("--seeds") ?? String(seedsDefault)),
    bug: bug as RaftBugName | null,
    verbose: argv.includes("--verbose"),
  };
}

function parseSeed(text: string): number {
  const seed = Number(text);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`not a seed: ${text}`);
  return seed;
}

function describe(result: SimulationResult): string {
  const { ok, failed, unknown } = result.operations;
  return (
    `seed ${result.seed}: ${result.members} members, ${result.events} events, ` +
    `${result.committed} entries, operations ok ${ok} refused ${failed} unknown ${unknown}, ` +
    `trace ${result.traceHash}`
  );
}

async function main(): Promise<number> {
  const options = parseArguments(process.argv.slice(2));
  const bugs = options.bug === null ? {} : { [options.bug]: true };
  const startedMs = performance.now();
  let lastProgressMs = startedMs;
  let events = 0;
  for (let offset = 0; offset < options.seeds; offset++) {
    const seed = options.seedStart + offset;
    const result = await runSimulation({ seed, bugs });
    events += result.events;
    if (options.verbose) console.log(describe(result));
    if (!result.ok) {
      console.error(`violation at seed ${seed}: ${result.violation}`);
      const bugPart = options.bug === null ? "" : ` -- --bug ${options.bug}`;
      console.error(`replay: SEED=${seed} npm run sim${bugPart}`);
      return 1;
    }
    const nowMs = performance.now();
    if (nowMs - lastProgressMs > 2000 || offset === options.seeds - 1) {
      lastProgressMs = nowMs;
      const seconds = (nowMs - startedMs) / 1000;
      console.log(
        `${offset + 1}/${options.seeds} seeds ok (${seeds(options, offset)}), ` +
          `${Math.round(events / seconds)} events/s, ${seconds.toFixed(1)} s`,
      );
    }
  }
  return 0;
}

function seeds(options: CampaignOptions, offset: number): string {
  return `${options.seedStart}..${options.seedStart + offset}`;
}

process.exitCode = await main();
