// The log store contract, run against the in-memory twin.
import { runLogStoreContract } from "../testing/sim/log-store-contract.ts";
import type { RaftLogStore } from "./log-store.ts";
import { MemoryLogStore } from "./memory-log-store.ts";

runLogStoreContract("memory", {
  create: () => new MemoryLogStore(),
  // The twin's data lives in the object itself: "reopening" is keeping it.
  reopen: (store: RaftLogStore) => store,
});
