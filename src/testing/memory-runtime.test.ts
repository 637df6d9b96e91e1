// The runtime contract on the memory twin, so unit tests that use the twin can trust it.
import { MemoryRuntime } from "./memory-runtime.ts";
import { runtimeContract } from "./runtime-contract.ts";

const image = "shoal-test/busybox:1";
/** In the twin's registry, not yet in its engine. */
const registryImage = "shoal-test/pullable:1";

runtimeContract(
  "memory runtime",
  async () => {
    const runtime = new MemoryRuntime({ images: [image], registry: [registryImage] });
    return {
      runtime,
      image,
      killContainer: async (containerId) => runtime.kill(containerId, 137),
      close: () => runtime.close(),
    };
  },
  { registry: { image: registryImage } },
);
