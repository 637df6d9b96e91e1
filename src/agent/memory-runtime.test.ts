// The runtime contract on the memory twin, so unit tests that use the twin can trust it.
import { MemoryRuntime } from "../testing/memory-runtime.ts";
import { runtimeContract } from "./runtime-contract.ts";

const image = "shoal-test/busybox:1";

runtimeContract("memory runtime", async () => {
  const runtime = new MemoryRuntime({ images: [image] });
  return {
    runtime,
    image,
    killContainer: async (containerId) => runtime.kill(containerId, 137),
    close: () => runtime.close(),
  };
});
