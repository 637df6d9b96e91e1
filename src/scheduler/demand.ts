// What one task asks of a node: cpu, memory and fixed host ports, summed over its containers.
// Cpu is kept in integer millicpus so that sums of fractions (3 x 0.1) compare exactly.

import { hostPathsOf } from "../core/host-paths.ts";
import type { TaskDefinition } from "../core/types.ts";

export interface TaskDemand {
  cpuMilli: number;
  memoryMb: number;
  /** Fixed host ports as `port/protocol` keys; ports the engine picks (0 or absent) are absent. */
  ports: string[];
  /** A fixed host port the task asks for twice, which no node can ever satisfy; or null. */
  duplicatePort: string | null;
  /** Host paths the task mounts: only a node that allows each of them may run it. */
  hostPaths: string[];
}

export function cpuToMilli(cpu: number): number {
  return Math.round(cpu * 1000);
}

export function portKey(host: number, protocol: string): string {
  return `${host}/${protocol}`;
}

export function demandOf(definition: TaskDefinition): TaskDemand {
  let cpuMilli = 0;
  let memoryMb = 0;
  const ports: string[] = [];
  let duplicatePort: string | null = null;
  for (const container of definition.containers) {
    cpuMilli += cpuToMilli(container.cpu ?? 0);
    memoryMb += container.memoryMb ?? 0;
    for (const port of container.ports) {
      if (port.host === undefined || port.host <= 0) continue;
      const key = portKey(port.host, port.protocol);
      if (ports.includes(key)) duplicatePort ??= key;
      else ports.push(key);
    }
  }
  return {
    cpuMilli,
    memoryMb,
    ports,
    duplicatePort,
    hostPaths: hostPathsOf(definition.containers),
  };
}

/** Host ports a description lists by name; a task may ask for hundreds (ten containers of 64). */
export const portsDescribedMax = 5;

/** A short human description, e.g. "2 cpu, 64 MB, ports 8080/tcp,8081/tcp". */
export function describeDemand(demand: TaskDemand): string {
  const parts = [`${demand.cpuMilli / 1000} cpu`, `${demand.memoryMb} MB`];
  if (demand.ports.length > 0) parts.push(describePorts(demand.ports));
  return parts.join(", ");
}

function describePorts(ports: readonly string[]): string {
  const listed = ports.slice(0, portsDescribedMax).join(",");
  const unlisted = ports.length - portsDescribedMax;
  const more = unlisted > 0 ? ` +${unlisted} more` : "";
  return `${ports.length === 1 ? "port" : "ports"} ${listed}${more}`;
}
