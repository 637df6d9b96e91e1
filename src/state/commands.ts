// The commands of the log: a tagged union with a codec. Proposers stamp ids and times (`at`);
// the state machine only reads what a command carries. A command that does not decode is a bug.
import { z } from "zod";
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";
import {
  containerSpecSchema,
  deploymentSchema,
  drainMsSchema,
  ingressListSchema,
  nameSchema,
  placementSchema,
  replicasSchema,
  stopAfterDisconnectSchema,
} from "./spec.ts";

const at = z.number().int().nonnegative();
const taskDefinitionRef = z.strictObject({ family: z.string(), revision: z.number().int() });
const taskStates = z.enum(["pending", "starting", "running", "stopped", "failed", "lost"]);

const taskContainer = z.strictObject({
  name: z.string(),
  containerId: z.string().nullable(),
  state: z.enum(["created", "running", "exited", "missing", "failed"]),
  exitCode: z.number().int().nullable(),
  health: z.enum(["starting", "healthy", "unhealthy"]).nullable(),
  ports: z.array(
    z.strictObject({
      container: z.number().int(),
      host: z.number().int().nullable(),
      protocol: z.enum(["tcp", "udp"]),
    }),
  ),
});

export const taskReportSchema = z.strictObject({
  taskId: z.string(),
  node: z.string(),
  state: taskStates,
  reason: z.string().max(limits.commandTextBytesMax),
  exitCode: z.number().int().nullable(),
  containers: z.array(taskContainer).max(limits.containersPerTaskMax),
});

const planSchema = z.strictObject({
  create: z.array(
    z.strictObject({
      id: z.string(),
      service: z.string().nullable(),
      taskDefinition: taskDefinitionRef,
      node: z.string().nullable(),
    }),
  ),
  assign: z.array(z.strictObject({ taskId: z.string(), node: z.string() })),
  stop: z.array(z.strictObject({ taskId: z.string(), reason: z.string() })),
  events: z.array(
    z.strictObject({
      type: z.string(),
      message: z.string(),
      service: z.string().nullable(),
      task: z.string().nullable(),
    }),
  ),
  completeDeployments: z.array(z.string()).default([]),
  rebalanced: z.array(z.string()).default([]),
  reads: z.strictObject({
    services: z.record(z.string(), z.number().int()),
    tasks: z.record(z.string(), z.number().int()),
    nodes: z.record(z.string(), z.number().int()).default({}),
  }),
});

export const labelsSchema = z
  .record(
    z
      .string()
      .min(1)
      .max(limits.labelLengthMax)
      .regex(/^[A-Za-z0-9_.\-/]+$/, "a label name"),
    z.string().max(limits.labelLengthMax),
  )
  .refine((labels) => Object.keys(labels).length <= limits.labelsPerNodeMax, "too many labels");

const nodeFields = {
  id: z.string(),
  name: z.string(),
  address: z.string(),
  /** The port of the node's API and peer routes. */
  port: z.number().int().min(1).max(65535).default(7420),
  arch: z.string(),
  os: z.string(),
  cpus: z.number().positive(),
  memoryMb: z.number().int().positive(),
  labels: z.record(z.string(), z.string()),
  version: z.string(),
  /** Directories this node lets tasks mount (`--allow-host-path`), and paths it never lets them. */
  hostPaths: z
    .strictObject({
      allowed: z.array(z.string().max(4096)).max(limits.hostPathsPerNodeMax),
      denied: z.array(z.string().max(4096)).max(limits.hostPathsPerNodeMax),
    })
    .optional(),
};

export const commandSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("cluster.init"),
    at,
    clusterId: z.string(),
    /** SHA-256 of the API token (hex): what a request's bearer token is checked against. */
    apiTokenHash: z.string().regex(/^[0-9a-f]{64}$/),
    /** The API token sealed under the cluster key (secret-box.ts), for each member's api.token. */
    apiTokenSealed: z.string().max(1024),
    /** The join token's secret sealed under the cluster key: what a joiner's proof is checked with. */
    joinSecretSealed: z.string().max(1024),
  }),
  z.strictObject({
    type: z.literal("cluster.rotate-api-token"),
    at,
    apiTokenHash: z.string().regex(/^[0-9a-f]{64}$/),
    apiTokenSealed: z.string().max(1024),
  }),
  z.strictObject({
    type: z.literal("cluster.rotate-join-secret"),
    at,
    joinSecretSealed: z.string().max(1024),
  }),
  z.strictObject({
    type: z.literal("node.register"),
    at,
    ...nodeFields,
    /** Set by the join route only: a node that left comes back only by joining again. */
    rejoin: z.boolean().optional(),
    /**
     * SHA-256 of the node's public key, pinned at admission: a certificate of the CA naming this
     * node with another key is refused (a member holds the CA key, and could mint one).
     */
    keyDigest: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  }),
  z.strictObject({
    type: z.literal("node.engine"),
    at,
    nodeId: z.string(),
    ready: z.boolean(),
    message: z.string().max(limits.commandTextBytesMax),
  }),
  // A node's own word on its disk: full while free space is below its reserve or its log waits
  // for space. Leaders take it even then (the reserve is kept for it), as etcd its NOSPACE alarm.
  z.strictObject({
    type: z.literal("node.disk"),
    at,
    nodeId: z.string(),
    full: z.boolean(),
    freeBytes: z.number().int().nonnegative().nullable(),
    reserveBytes: z.number().int().nonnegative(),
  }),
  /** What the node's ingress listens on, as the node sees it; a change records events. */
  z.strictObject({
    type: z.literal("node.ingress"),
    at,
    nodeId: z.string(),
    listeners: z
      .array(
        z.strictObject({
          port: z.number().int().min(1).max(65535),
          listening: z.boolean(),
          message: z.string().max(limits.commandTextBytesMax),
        }),
      )
      .max(limits.ingressListenersPerNodeMax),
  }),
  z.strictObject({ type: z.literal("node.leave"), at, nodeId: z.string() }),
  // Judged by the leader: `rowVersion` is the version of the node's row it read, so a node that
  // spoke, registered or changed since makes the command change nothing (fencing).
  z.strictObject({
    type: z.literal("node.down"),
    at,
    nodeId: z.string(),
    rowVersion: z.number().int(),
    silentMs: z.number().int().nonnegative(),
  }),
  z.strictObject({
    type: z.literal("node.up"),
    at,
    nodeId: z.string(),
    rowVersion: z.number().int(),
  }),
  // People drain a node (its tasks move away, start first), activate it, and label it.
  z.strictObject({ type: z.literal("node.drain"), at, nodeId: z.string() }),
  z.strictObject({ type: z.literal("node.activate"), at, nodeId: z.string() }),
  z.strictObject({
    type: z.literal("node.label"),
    at,
    nodeId: z.string(),
    set: labelsSchema,
    remove: z.array(z.string()).max(limits.labelsPerNodeMax),
  }),
  // Settings are optional (the handler takes the defaults), as in entries written before them.
  z.strictObject({
    type: z.literal("service.create"),
    at,
    name: nameSchema,
    mode: z.enum(["replicated", "global"]).optional(),
    replicas: replicasSchema,
    containers: z.array(containerSpecSchema),
    placement: placementSchema.optional(),
    deployment: deploymentSchema.optional(),
    stopAfterDisconnectMs: stopAfterDisconnectSchema.optional(),
    ingress: ingressListSchema.optional(),
    drainMs: drainMsSchema.optional(),
  }),
  z.strictObject({
    type: z.literal("service.update"),
    at,
    name: z.string(),
    replicas: replicasSchema.optional(),
    containers: z.array(containerSpecSchema).optional(),
    placement: placementSchema.optional(),
    deployment: deploymentSchema.optional(),
    stopAfterDisconnectMs: stopAfterDisconnectSchema.optional(),
    ingress: ingressListSchema.optional(),
    drainMs: drainMsSchema.optional(),
  }),
  /** Back to the revision before the latest deployment, as a deployment of its own. */
  z.strictObject({ type: z.literal("service.rollback"), at, name: z.string() }),
  /** Spread the service's tasks again (start first, as a deployment moves them). */
  z.strictObject({ type: z.literal("service.rebalance"), at, name: z.string() }),
  z.strictObject({ type: z.literal("service.delete"), at, name: z.string() }),
  z.strictObject({
    type: z.literal("task.run"),
    at,
    taskId: z.string(),
    family: z.string(),
    revision: z.number().int().optional(),
    containers: z.array(containerSpecSchema).optional(),
  }),
  z.strictObject({
    type: z.literal("task.stop"),
    at,
    taskId: z.string(),
    reason: z.string().max(limits.commandTextBytesMax),
  }),
  z.strictObject({
    type: z.literal("task.report"),
    at,
    reports: z.array(taskReportSchema).max(limits.reportBatchMax),
  }),
  z.strictObject({ type: z.literal("plan.apply"), at, plan: planSchema }),
]);

export type Command = z.infer<typeof commandSchema>;
export type CommandType = Command["type"];
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;

/** Encodes a command for the log. Proposing a command that does not validate is a bug. */
export function encodeCommand(command: Command): Uint8Array {
  const checked = commandSchema.safeParse(command);
  assert(checked.success, `invalid command proposed: ${checked.error?.message}`);
  // The parsed output, not the caller's object: key order and defaults then match what every
  // replica decodes, so comparisons of encoded parts agree on every node.
  const bytes = new TextEncoder().encode(JSON.stringify(checked.data));
  assert(bytes.byteLength <= limits.commandBytesMax, `command too large: ${bytes.byteLength}`);
  return bytes;
}

/** Bytes of a command as the log stores it (checked against limits before proposing). */
export function encodedSize(command: Command): number {
  return new TextEncoder().encode(JSON.stringify(command)).byteLength;
}

/** Decodes a command from the log; an undecodable entry is a bug and crashes. */
export function decodeCommand(bytes: Uint8Array): Command {
  return decodeProposal(bytes).command;
}

/** A command in the log, with the id of the request that proposed it when it was forwarded. */
export interface Proposal {
  command: Command;
  requestId: string | null;
}

export const requestIdSchema = z.string().regex(/^[0-9a-z]{8,64}$/);

/** A forwarded command travels and is logged as `{ request, command }`; others as the command. */
export function encodeProposal(command: Command, requestId: string | null): Uint8Array {
  if (requestId === null) return encodeCommand(command);
  assert(requestIdSchema.safeParse(requestId).success, `bad request id ${requestId}`);
  const inner = new TextDecoder().decode(encodeCommand(command));
  return new TextEncoder().encode(`{"request":${JSON.stringify(requestId)},"command":${inner}}`);
}

export function decodeProposal(bytes: Uint8Array): Proposal {
  const json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  const enveloped = typeof json.request === "string" && "command" in json;
  const parsed = commandSchema.safeParse(enveloped ? json.command : json);
  assert(parsed.success, `undecodable command in the log: ${parsed.error?.message}`);
  return { command: parsed.data, requestId: enveloped ? (json.request as string) : null };
}
