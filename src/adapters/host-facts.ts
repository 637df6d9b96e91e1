// What a node tells the fleet about itself: architecture, cpus, memory, and the address peers
// and people reach it at.
import { arch, cpus, networkInterfaces, platform, totalmem } from "node:os";

/** Interfaces of container engines and virtual links are never the node's address. */
const virtualInterface = /^(docker|br-|veth|virbr|cni|flannel|lo)/;

export function primaryAddress(bind: string): string {
  if (bind !== "0.0.0.0" && bind !== "::") return bind;
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (virtualInterface.test(name)) continue;
    const ipv4 = addresses?.find((address) => address.family === "IPv4" && !address.internal);
    if (ipv4) return ipv4.address;
  }
  return "127.0.0.1";
}

export function hostFacts() {
  return {
    arch: arch() === "x64" ? "amd64" : arch(),
    os: platform(),
    cpus: Math.max(1, cpus().length),
    memoryMb: Math.max(1, Math.floor(totalmem() / (1024 * 1024))),
  };
}
