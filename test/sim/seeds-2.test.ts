// Simulator seeds 131..260: part 2 of the sweep that npm test runs.
import { sweepSeeds } from "./seed-sweep.ts";

sweepSeeds(131, 130);
