// Simulator seeds 261..390: part 3 of the sweep that npm test runs.
import { sweepSeeds } from "./seed-sweep.ts";

sweepSeeds(261, 130);
