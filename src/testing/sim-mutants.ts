// `npm run sim:mutants`: for each Raft mechanism, a mutant of the real core or host pipeline
// with that mechanism removed, and a campaign of the default mix (plain `npm run sim`'s seeds) that must find a
// violation within `--seeds` seeds (2,000 by default). Prints one table row per mutant and exits
// non-zero when any mutant goes uncaught: a mutant no campaign catches is a finding.
// `--only name[,name]` runs some; `--seeds N` bounds each campaign.
import { type HostBugName, hostBugNames } from "../raft/host/ports.ts";
import { type RaftBugName, raftBugNames } from "../raft/types.ts";
import { runSimulation, type SimulationOptions } from "./sim/simulation.ts";

export interface Mutant {
  readonly bug: RaftBugName | HostBugName;
  readonly mechanism: string;
}

/** The simulation options that switch the mutant on, in the core or in the host. */
function withMutant(mutant: Mutant, seed: number): SimulationOptions {
  const on = { [mutant.bug]: true };
  // Caught by what the mutant breaks, not by a checker that watches its mechanism.
  return hostBugNames.includes(mutant.bug as HostBugName)
    ? { seed, hostBugs: on, outcomesOnly: true }
    : { seed, bugs: on, outcomesOnly: true };
}

/** The mechanisms the simulator must tell apart from their absence. */
export const mutants: readonly Mutant[] = [
  { bug: "noPreVote", mechanism: "PreVote" },
  { bug: "noCheckQuorum", mechanism: "CheckQuorum" },
  { bug: "noVoteRefusal", mechanism: "vote refusal after hearing a leader" },
  { bug: "noRestartRefusal", mechanism: "vote refusal after a restart" },
  { bug: "readIndexWithoutRound", mechanism: "ReadIndex heartbeat round" },
  { bug: "readIndexBeforeOwnTermCommit", mechanism: "ReadIndex only after the own-term commit" },
  { bug: "transferKeepsLease", mechanism: "a transfer forfeits the lease" },
  { bug: "leaseIgnoresDrift", mechanism: "the lease accounts for clock drift" },
  {
    bug: "membershipBeforeOwnTermCommit",
    mechanism: "membership change only after the own-term commit",
  },
  { bug: "concurrentMembershipChanges", mechanism: "one membership change at a time" },
  { bug: "commitPreviousTermEntries", mechanism: "commit only by counting own-term entries" },
  { bug: "truncateOnStaleAppend", mechanism: "truncate at the first conflict only" },
  { bug: "skipAppendTermCheck", mechanism: "appends of an older term are refused" },
  { bug: "voteTwiceInTerm", mechanism: "one vote per term" },
  { bug: "skipPersistVote", mechanism: "the vote is durable before it is granted" },
  { bug: "applyBeforeCommit", mechanism: "apply only what is committed" },
  { bug: "soleVoterIgnoresLease", mechanism: "a sole voter outlasts a lease it heard of" },
  { bug: "trustNonMembers", mechanism: "votes and answers of non-members are dropped" },
  {
    bug: "learnerNeverStandsIn",
    mechanism: "a member that is no voter campaigns when no voter can win",
  },
  { bug: "skipFlush", mechanism: "fsync before acknowledging" },
  { bug: "sendBeforeFlush", mechanism: "flush before send where required" },
  { bug: "answerAnyTerm", mechanism: "answer a proposal only for its own term" },
  { bug: "freshRequestIdOnResend", mechanism: "a forwarded write applied once" },
  { bug: "anyImage", mechanism: "snapshot image and metadata from one index" },
  { bug: "skipSyncAtOpen", mechanism: "what a crashed process wrote is flushed before it is read" },
  {
    bug: "refuseAfterUnknownCopy",
    mechanism: "a write an earlier copy may have applied is never reported refused",
  },
];

export interface Hunt {
  readonly mutant: Mutant;
  /** The first seed that caught it, or null. */
  readonly seed: number | null;
  readonly seedsRun: number;
  readonly violation: string | null;
}

/** Runs the default mix with the mutant from seed 1 until the first violation or `seedsMax`. */
export async function hunt(mutant: Mutant, seedsMax: number): Promise<Hunt> {
  for (let seed = 1; seed <= seedsMax; seed++) {
    const result = await runSimulation(withMutant(mutant, seed));
    if (!result.ok) return { mutant, seed, seedsRun: seed, violation: result.violation };
  }
  return { mutant, seed: null, seedsRun: seedsMax, violation: null };
}

function option(argv: readonly string[], name: string): string | undefined {
  const position = argv.indexOf(name);
  return position === -1 ? undefined : argv[position + 1];
}

function chosen(argv: readonly string[]): readonly Mutant[] {
  const only = option(argv, "--only");
  if (only === undefined) return mutants;
  const names = only.split(",");
  for (const name of names) {
    const known: readonly string[] = [...raftBugNames, ...hostBugNames];
    if (!known.includes(name)) throw new Error(`unknown mutant ${name}`);
  }
  return mutants.filter((mutant) => names.includes(mutant.bug));
}

function row(found: Hunt): string {
  const seeds = found.seed === null ? `not caught in ${found.seedsRun}` : String(found.seed);
  const violation = (found.violation ?? "-").slice(0, 90);
  const { bug: name, mechanism } = found.mutant;
  return `| ${name} | ${mechanism} | ${seeds} | ${violation} |`;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const seedsMax = Number(option(argv, "--seeds") ?? "2000");
  if (!Number.isSafeInteger(seedsMax) || seedsMax < 1) throw new Error("--seeds wants a count");
  console.log("| mutant | mechanism removed | seeds to the first catch | violation |");
  console.log("| --- | --- | --- | --- |");
  let missed = 0;
  for (const mutant of chosen(argv)) {
    const found = await hunt(mutant, seedsMax);
    if (found.seed === null) missed++;
    console.log(row(found));
  }
  if (missed > 0) console.error(`${missed} mutant(s) went uncaught within ${seedsMax} seeds`);
  return missed === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
