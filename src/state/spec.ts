// The user-facing shapes of a service spec and a one-off task, with their defaults. Unknown
// fields are refused, not ignored, so a typo never silently changes what runs.
import { z } from "zod";
import { attributePattern, parseConstraint } from "../core/constraints.ts";
import { limits } from "../core/limits.ts";
import { deploymentDefaults, drainMsDefault, placementDefaults } from "../core/types.ts";

const nameSchema = z
  .string()
  .min(1)
  .max(limits.serviceNameLengthMax)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, "lowercase letters, digits and inner dashes only");

const portNumber = z.number().int().min(1).max(65535);

export const portSchema = z.strictObject({
  container: portNumber,
  host: z.number().int().min(0).max(65535).optional(),
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
});

export const mountSchema = z.strictObject({
  source: z.string().min(1).max(4096),
  target: z.string().min(1).max(4096).startsWith("/"),
  readOnly: z.boolean().default(false),
});

export const healthcheckSchema = z.strictObject({
  command: z.array(z.string().max(4096)).min(1).max(limits.commandArgsMax),
  intervalMs: z
    .number()
    .int()
    .min(limits.healthcheckIntervalMsMin)
    .max(limits.healthcheckIntervalMsMax)
    .default(10_000),
  timeoutMs: z.number().int().min(100).max(limits.healthcheckIntervalMsMax).default(5000),
  retries: z.number().int().min(1).max(limits.healthcheckRetriesMax).default(3),
  startPeriodMs: z.number().int().min(0).max(limits.healthcheckIntervalMsMax).default(0),
});

export const containerSpecSchema = z.strictObject({
  name: nameSchema,
  image: z
    .string()
    .min(1)
    .max(limits.imageNameLengthMax)
    .regex(/^[^\s]+$/, "no whitespace"),
  command: z.array(z.string().max(4096)).max(limits.commandArgsMax).optional(),
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name"),
      z.string().max(limits.envValueBytesMax),
    )
    .refine((env) => Object.keys(env).length <= limits.envPerContainerMax, "too many variables")
    .default({}),
  ports: z.array(portSchema).max(limits.portsPerContainerMax).default([]),
  mounts: z.array(mountSchema).max(limits.mountsPerContainerMax).default([]),
  cpu: z.number().positive().max(limits.cpuPerContainerMax).optional(),
  memoryMb: z
    .number()
    .int()
    .min(limits.memoryMbPerContainerMin)
    .max(limits.memoryMbPerContainerMax)
    .optional(),
  healthcheck: healthcheckSchema.optional(),
  essential: z.boolean().default(true),
});

const containersSchema = z
  .array(containerSpecSchema)
  .min(1)
  .max(limits.containersPerTaskMax)
  .refine(
    (containers) => new Set(containers.map((c) => c.name)).size === containers.length,
    "container names must be unique within a task",
  );

export const replicasSchema = z.number().int().min(0).max(limits.replicasMax);

const constraintSchema = z.string().superRefine((text, ctx) => {
  const parsed = parseConstraint(text);
  if (!parsed.ok) ctx.addIssue({ code: "custom", message: parsed.message });
});

export const placementSchema = z.strictObject({
  constraints: z.array(constraintSchema).max(limits.constraintsPerServiceMax).default([]),
  strategy: z.enum(["spread", "binpack"]).default(placementDefaults.strategy),
  /** `node`, a node attribute (`arch`) or a label (`zone`). */
  spreadBy: z
    .string()
    .max(limits.labelLengthMax)
    .regex(attributePattern, "an attribute name")
    .default(placementDefaults.spreadBy),
  rebalance: z.boolean().default(placementDefaults.rebalance),
});

export const deploymentSchema = z
  .strictObject({
    maxPercent: z.number().int().min(100).max(1000).default(deploymentDefaults.maxPercent),
    minHealthyPercent: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(deploymentDefaults.minHealthyPercent),
    rollback: z.boolean().default(deploymentDefaults.rollback),
  })
  .refine((d) => d.maxPercent > d.minHealthyPercent, {
    message: "maxPercent must be above minHealthyPercent, or a deployment could never move",
  });

/** A Host name as a browser sends it, lowercased when matched; no port, no wildcard. */
const hostNameSchema = z
  .string()
  .min(1)
  .max(limits.ingressHostLengthMax)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i, "a host name");

export const ingressSchema = z
  .strictObject({
    port: portNumber,
    /** Left out: the first container that has ports, else the first (resolved when written). */
    container: nameSchema.optional(),
    containerPort: portNumber,
    protocol: z.enum(["tcp", "http"]).default("tcp"),
    hosts: z.array(hostNameSchema).max(limits.ingressHostsMax).default([]),
    proxyProtocol: z.enum(["v2"]).optional(),
  })
  .refine((ingress) => ingress.protocol === "http" || ingress.hosts.length === 0, {
    message: "hosts route HTTP requests: give them only with protocol http",
    path: ["hosts"],
  })
  .refine((ingress) => ingress.protocol === "tcp" || ingress.proxyProtocol === undefined, {
    message: "proxyProtocol is for protocol tcp (http mode sends X-Forwarded-For)",
    path: ["proxyProtocol"],
  });

const ingressListSchema = z
  .array(ingressSchema)
  .max(limits.ingressPerServiceMax)
  .refine(
    (list) => new Set(list.map((ingress) => ingress.port)).size === list.length,
    "each ingress port once per service",
  );

export const drainMsSchema = z.number().int().min(0).max(limits.drainMsMax);

export const stopAfterDisconnectSchema = z
  .number()
  .int()
  .min(0)
  .max(limits.stopAfterDisconnectMsMax)
  .nullable();

export const serviceSpecSchema = z
  .strictObject({
    name: nameSchema,
    mode: z.enum(["replicated", "global"]).default("replicated"),
    /** Absent for a global service, which runs one task per eligible node. */
    replicas: replicasSchema.optional(),
    containers: containersSchema,
    placement: placementSchema.prefault({}),
    deployment: deploymentSchema.prefault({}),
    stopAfterDisconnectMs: stopAfterDisconnectSchema.default(null),
    ingress: ingressListSchema.default([]),
    drainMs: drainMsSchema.default(drainMsDefault),
  })
  .refine((spec) => spec.mode === "replicated" || spec.replicas === undefined, {
    message: "a global service runs one task on every eligible node: leave replicas out",
    path: ["replicas"],
  })
  .transform((spec) => ({ ...spec, replicas: spec.replicas ?? (spec.mode === "global" ? 0 : 1) }));

export const servicePatchSchema = z
  .strictObject({
    replicas: replicasSchema.optional(),
    containers: containersSchema.optional(),
    placement: placementSchema.optional(),
    deployment: deploymentSchema.optional(),
    stopAfterDisconnectMs: stopAfterDisconnectSchema.optional(),
    ingress: ingressListSchema.optional(),
    drainMs: drainMsSchema.optional(),
  })
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), {
    message:
      "give replicas, containers, placement, deployment, stopAfterDisconnectMs, ingress or drainMs",
  });

export const taskRunSchema = z.union([
  z.strictObject({ taskDefinition: z.string().regex(/^[a-z0-9-]+:\d+$/, "family:revision") }),
  z.strictObject({ family: nameSchema.default("run"), containers: containersSchema }),
]);

export type IngressSpec = z.infer<typeof ingressSchema>;
export type ServiceSpec = z.infer<typeof serviceSpecSchema>;
export type ServicePatch = z.infer<typeof servicePatchSchema>;
export type TaskRunSpec = z.infer<typeof taskRunSchema>;
export { ingressListSchema, nameSchema };
