// The simulator's speed: events per second over a campaign of the default mix, the median of
// three runs. A slow simulator runs fewer seeds in the same time and finds less.
import { runSimulation } from "../src/testing/sim/simulation.ts";
import { type BenchRow, median } from "./bench-row.ts";

const goalEventsPerSecond = 50_000;
const seedsPerRun = 200;
const runs = 3;

async function eventsPerSecond(seedStart: number): Promise<number> {
  let events = 0;
  const startedMs = performance.now();
  for (let seed = seedStart; seed < seedStart + seedsPerRun; seed++) {
    events += (await runSimulation({ seed })).events;
  }
  return events / ((performance.now() - startedMs) / 1000);
}

export async function benchSim(): Promise<BenchRow[]> {
  const samples: number[] = [];
  for (let run = 0; run < runs; run++) samples.push(await eventsPerSecond(1 + run * seedsPerRun));
  const value = Math.round(median(samples));
  return [
    {
      name: `simulator, default mix (${seedsPerRun} seeds, median of ${runs})`,
      value,
      unit: "events/s",
      goal: `>= ${goalEventsPerSecond}`,
      pass: value >= goalEventsPerSecond,
    },
  ];
}
