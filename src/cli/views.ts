// The tables and inspect blocks the verbs print, one function per shape the API returns.
import type { DiskStatus, HostUsage, NodeInfo } from "../core/types.ts";
import type { ClusterView, ServiceDetail, ServiceView, TaskView } from "./client.ts";
import { ago, fields, labelsText, portText, shortId, table } from "./format.ts";

type UsageView = Pick<HostUsage, "load1" | "memoryFreeMb"> | null | undefined;

/** Load and free memory from the node's last heartbeat, known where the leader answers. */
function usageText(usage: UsageView): string {
  return usage ? `${usage.load1} / ${usage.memoryFreeMb} MB free` : "-";
}

export function nodesTable(
  nodes: (NodeInfo & { role?: string | null; usage?: UsageView })[],
  now: number,
): string {
  const rows = nodes.map((node) => [
    shortId(node.id),
    node.name,
    node.address,
    node.status,
    node.role ?? "-",
    node.engineReady ? "ok" : "down",
    node.diskFull ? "full" : "ok",
    node.arch,
    String(node.cpus),
    `${node.memoryMb} MB`,
    usageText(node.usage),
    labelsText(node.labels),
    ago(node.updatedAt, now),
  ]);
  const headers = ["ID", "NAME", "ADDRESS", "STATUS", "ROLE", "ENGINE", "DISK", "ARCH", "CPUS"];
  return table([...headers, "MEMORY", "LOAD / FREE", "LABELS", "UPDATED"], rows);
}

export function servicesTable(services: ServiceView[], now: number): string {
  const rows = services.map((service) => [
    service.mode === "global" ? `${service.name} (global)` : service.name,
    `${service.runningCount}/${service.desiredCount}`,
    String(service.pendingCount),
    service.taskDefinition,
    service.containers.map((container) => container.image).join(",") || "-",
    service.ingress.map((each) => `${each.port}/${each.protocol}`).join(",") || "-",
    ago(service.updatedAt, now),
  ]);
  return table(["NAME", "RUNNING", "PENDING", "DEFINITION", "IMAGES", "INGRESS", "UPDATED"], rows);
}

export function tasksTable(tasks: TaskView[], now: number): string {
  const rows = tasks.map((task) => [
    shortId(task.id),
    task.service ?? task.taskDefinition,
    task.nodeName ?? "-",
    task.desired,
    task.state,
    taskPorts(task) || "-",
    ago(task.createdAt, now),
    task.reason || "-",
  ]);
  const headers = ["ID", "SERVICE", "NODE", "DESIRED", "STATE", "PORTS", "CREATED", "REASON"];
  return table(headers, rows);
}

/** Published ports of a task; a finished task publishes none, whatever it last reported. */
function taskPorts(task: TaskView): string {
  const published = task.containers.flatMap((container) =>
    container.ports.filter((port) => port.host),
  );
  return published.map(portText).join(",") || "-";
}

export function clusterBlock(cluster: ClusterView): string {
  const leader = cluster.leader ? `${cluster.leader.name} (${cluster.leader.address})` : "none";
  return fields([
    ["cluster", cluster.id],
    ["leader", leader],
    ["term", String(cluster.term)],
    [
      "lease",
      cluster.leaseHeld ? `held, ${Math.round(cluster.leaseRemainingMs)} ms left` : "not held",
    ],
    ["voters", String(cluster.voters?.length ?? 0)],
    ["learners", String(cluster.learners?.length ?? 0)],
    ["applied index", String(cluster.appliedIndex)],
    ...(cluster.disk ? [["this node's disk", diskText(cluster.disk)] as [string, string]] : []),
  ]);
}

const megabytes = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

/** The answering node's disk, and why it refuses writes when it does. */
export function diskText(disk: DiskStatus): string {
  const free = disk.freeBytes === null ? "free space unknown" : `${megabytes(disk.freeBytes)} free`;
  const room = `${free}, reserve ${megabytes(disk.reserveBytes)}`;
  if (disk.status === "ok") return `ok (${room})`;
  const held = disk.logHeld ? "; its log waits for space to write what it took" : "";
  return `FULL (${room}): this node refuses writes (E_NO_SPACE) until space is freed in its data dir${held}`;
}

export function serviceBlock(service: ServiceDetail, now: number): string {
  const head = fields([
    ["name", service.name],
    ["mode", service.mode],
    ["replicas", `${service.runningCount} running of ${service.desiredCount}`],
    ["definition", service.taskDefinition],
    ["placement", placementText(service.placement)],
    [
      "deployment",
      `max ${service.deployment.maxPercent}%, min healthy ${service.deployment.minHealthyPercent}%, rollback ${service.deployment.rollback ? "on" : "off"}`,
    ],
    [
      "disconnect",
      service.stopAfterDisconnectMs === null
        ? "keep running"
        : `stop after ${service.stopAfterDisconnectMs} ms`,
    ],
    ["drain", service.ingress.length === 0 ? "-" : `${service.drainMs} ms`],
    ["created", ago(service.createdAt, now)],
    ["updated", ago(service.updatedAt, now)],
  ]);
  const deployments = table(
    ["DEPLOYMENT", "REVISIONS", "STATUS", "TASKS", "FAILED", "REASON", "STARTED"],
    service.deployments.map((d) => [
      `${d.id}${d.isRollback ? " (rollback)" : ""}`,
      `${d.fromRevision ?? "-"} -> ${d.toRevision}`,
      d.status,
      d.taskCount === null
        ? "-"
        : `${d.runningCount}/${d.taskCount} running, ${d.oldTaskCount} old`,
      `${d.failedTasks}/${d.failureThreshold}`,
      d.reason || "-",
      ago(d.createdAt, now),
    ]),
  );
  const containers = table(
    ["CONTAINER", "IMAGE", "COMMAND", "PORTS", "CPU", "MEMORY"],
    service.containers.map((container) => [
      container.name,
      container.image,
      container.command?.join(" ") || "-",
      container.ports.map((port) => portText(port)).join(",") || "-",
      container.cpu === undefined ? "-" : String(container.cpu),
      container.memoryMb === undefined ? "-" : `${container.memoryMb} MB`,
    ]),
  );
  const ingress = ingressText(service.ingress);
  return `${head}\n${containers}\n${ingress}${deployments}\n${tasksTable(service.tasks, now)}`;
}

/** The ingress table, then one line per node that does not listen; empty without ingress. */
function ingressText(ingress: ServiceView["ingress"]): string {
  if (ingress.length === 0) return "";
  const rows = ingress.map((each) => [
    String(each.port),
    each.protocol + (each.proxyProtocol ? ` (PROXY ${each.proxyProtocol})` : ""),
    `${each.container}:${each.containerPort}`,
    each.hosts.join(",") || "*",
    `${each.nodes.filter((n) => n.listening).length}/${each.nodes.length} nodes`,
  ]);
  const table_ = table(["INGRESS", "PROTOCOL", "TARGET", "HOSTS", "LISTENING"], rows);
  return `${table_}${ingressWarnings(ingress)
    .map((line) => `warning: ${line}\n`)
    .join("")}\n`;
}

/** `node pi-2 does not listen on 8080: another program holds the port`, one per such node. */
export function ingressWarnings(ingress: ServiceView["ingress"]): string[] {
  return ingress.flatMap((each) =>
    each.nodes
      .filter((n) => !n.listening && n.status !== "down")
      .map((n) => `node ${n.name} does not listen on ${each.port}: ${n.message}`),
  );
}

function placementText(placement: ServiceDetail["placement"]): string {
  const strategy =
    placement.strategy === "binpack" ? "binpack memory" : `spread by ${placement.spreadBy}`;
  const constraints =
    placement.constraints.length > 0 ? `, ${placement.constraints.join(", ")}` : "";
  return `${strategy}${constraints}${placement.rebalance ? ", rebalance on" : ""}`;
}

export function taskBlock(task: TaskView, now: number): string {
  const head = fields([
    ["id", task.id],
    ["service", task.service ?? "-"],
    ["definition", task.taskDefinition],
    ["node", task.nodeName ? `${task.nodeName} (${task.node})` : "not placed"],
    ["desired", task.desired],
    ["state", task.state],
    ["reason", task.reason || "-"],
    ["exit code", task.exitCode === null ? "-" : String(task.exitCode)],
    ["created", ago(task.createdAt, now)],
    ["started", ago(task.startedAt, now)],
    ["stopped", ago(task.stoppedAt, now)],
  ]);
  const containers = table(
    ["CONTAINER", "DOCKER ID", "STATE", "EXIT", "HEALTH", "PORTS"],
    task.containers.map((container) => [
      container.name,
      container.containerId ? container.containerId.slice(0, 12) : "-",
      container.state,
      container.exitCode === null ? "-" : String(container.exitCode),
      container.health ?? "-",
      container.ports.map(portText).join(",") || "-",
    ]),
  );
  return `${head}\n${containers}`;
}

export function nodeBlock(node: NodeInfo, now: number): string {
  return fields([
    ["id", node.id],
    ["name", node.name],
    ["address", node.address],
    ["status", node.status],
    ["engine", node.engineReady ? "ok" : `down: ${node.engineMessage}`],
    ["disk", node.diskFull ? "full: takes no new tasks" : "ok"],
    ["os/arch", `${node.os}/${node.arch}`],
    ["cpus", String(node.cpus)],
    ["memory", `${node.memoryMb} MB`],
    ["labels", labelsText(node.labels)],
    ["version", node.version],
    ["registered", ago(node.registeredAt, now)],
    ["updated", ago(node.updatedAt, now)],
  ]);
}
