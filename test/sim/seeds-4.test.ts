// Simulator seeds 391..520: part 4 of the sweep that npm test runs.
import { sweepSeeds } from "./seed-sweep.ts";

sweepSeeds(391, 130);
