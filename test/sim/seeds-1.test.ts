// Simulator seeds 1..130: part 1 of the sweep that npm test runs.
import { sweepSeeds } from "./seed-sweep.ts";

sweepSeeds(1, 130);
