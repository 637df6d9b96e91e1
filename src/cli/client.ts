// A typed client for the /v1 API over HTTPS (https-fetch.ts). Every call returns the parsed JSON or throws a
// ShoalError carrying the server's code and message, so the CLI prints one kind of failure.

import type { z } from "zod";
import type {
  renderDeployment,
  renderService,
  renderTask,
  renderTaskDefinition,
} from "../api/render.ts";
import { type ErrorCode, errorCodes, ShoalError } from "../core/errors.ts";
import type { DiskStatus, HostUsage, NodeInfo, ShoalEvent } from "../core/types.ts";
import type { servicePatchSchema, serviceSpecSchema, taskRunSchema } from "../state/spec.ts";
import { httpsFetch } from "./https-fetch.ts";
import { SseParser } from "./sse.ts";
import { normalizeAddress } from "./target.ts";

/** How long one request may take; the CLI answers a person, who should not wait forever. */
export const requestTimeoutMs = 15_000;

export type ServiceView = ReturnType<typeof renderService>;
export type DeploymentView = ReturnType<typeof renderDeployment>;
export type ServiceDetail = ServiceView & { tasks: TaskView[]; deployments: DeploymentView[] };
export type TaskView = ReturnType<typeof renderTask>;
export type TaskDefinitionView = ReturnType<typeof renderTaskDefinition>;

/** A node with its place in the Raft configuration (null once it left). */
export type NodeView = NodeInfo & {
  role: "voter" | "learner" | null;
  /** From the node's last heartbeat, when the leader answered; null otherwise. */
  usage: HostUsage | null;
};

export interface ClusterView {
  id: string;
  createdAt: number;
  leader: { id: string; name: string | null; address: string | null } | null;
  term: number;
  leaseHeld: boolean;
  leaseRemainingMs: number;
  voters: string[];
  learners: string[];
  members: {
    id: string;
    name: string | null;
    role: string;
    match: number | null;
    appliedIndex: number | null;
  }[];
  appliedIndex: number;
  stateHash: string;
  nodes: NodeView[];
  /** The node that answered. */
  answeredBy: string;
  /** The answering node's own disk, measured as it answered; null when unknown. */
  disk: DiskStatus | null;
}

export interface HealthView {
  status: string;
  node: string;
  appliedIndex?: number;
  disk?: DiskStatus;
}

export interface TaskFilter {
  service?: string | undefined;
  node?: string | undefined;
  state?: string | undefined;
}

/** The input-side spec shapes: defaults may be left out, as in a spec file. */
export type ServiceSpecInput = z.input<typeof serviceSpecSchema>;
export type ServicePatchInput = z.input<typeof servicePatchSchema>;
export type TaskRunInput = z.input<typeof taskRunSchema>;
export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** `https://host:port` or a bare `host:port`. */
  address: string;
  token: string;
  /** The cluster CA the server must be of (PEM); null when none is known. */
  ca?: string | null;
  /** Injectable so tests can answer from `app.request` without a socket. */
  fetch?: Fetch;
  timeoutMs?: number;
}

export class ApiClient {
  readonly address: string;
  private readonly token: string;
  private readonly fetch: Fetch;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    this.address = normalizeAddress(options.address);
    this.token = options.token;
    this.fetch = options.fetch ?? httpsFetch(options.ca ?? null);
    this.timeoutMs = options.timeoutMs ?? requestTimeoutMs;
  }

  health = () => this.call<HealthView>("GET", "/v1/health");
  cluster = () => this.call<ClusterView>("GET", "/v1/cluster");
  nodes = () => this.call<NodeView[]>("GET", "/v1/nodes");
  node = (id: string) => this.call<NodeView>("GET", `/v1/nodes/${enc(id)}`);
  removeNode = (id: string) => this.call<NodeView>("DELETE", `/v1/nodes/${enc(id)}`);
  rotateJoinToken = () => this.call<{ joinToken: string }>("POST", "/v1/cluster/join-token/rotate");
  rotateApiToken = () => this.call<{ apiToken: string }>("POST", "/v1/cluster/api-token/rotate");
  drainNode = (id: string) => this.call<NodeView>("POST", `/v1/nodes/${enc(id)}/drain`);
  activateNode = (id: string) => this.call<NodeView>("POST", `/v1/nodes/${enc(id)}/activate`);
  labelNode = (id: string, change: { set: Record<string, string>; remove: string[] }) =>
    this.call<NodeView>("POST", `/v1/nodes/${enc(id)}/labels`, change);
  services = () => this.call<ServiceView[]>("GET", "/v1/services");
  service = (name: string) => this.call<ServiceDetail>("GET", `/v1/services/${enc(name)}`);
  createService = (spec: ServiceSpecInput) => this.call<ServiceView>("POST", "/v1/services", spec);
  updateService = (name: string, patch: ServicePatchInput) =>
    this.call<ServiceView>("PATCH", `/v1/services/${enc(name)}`, patch);
  rollbackService = (name: string) =>
    this.call<ServiceView>("POST", `/v1/services/${enc(name)}/rollback`);
  rebalanceService = (name: string) =>
    this.call<ServiceView>("POST", `/v1/services/${enc(name)}/rebalance`);
  deleteService = (name: string) =>
    this.call<{ name: string; deleted: boolean }>("DELETE", `/v1/services/${enc(name)}`);
  taskDefinitions = () => this.call<TaskDefinitionView[]>("GET", "/v1/task-definitions");
  tasks = (filter: TaskFilter = {}) => this.call<TaskView[]>("GET", `/v1/tasks${query(filter)}`);
  task = (id: string) => this.call<TaskView>("GET", `/v1/tasks/${enc(id)}`);
  runTask = (spec: TaskRunInput) => this.call<TaskView>("POST", "/v1/tasks", spec);
  stopTask = (id: string, reason?: string) =>
    this.call<TaskView>("POST", `/v1/tasks/${enc(id)}/stop`, reason ? { reason } : {});

  /** Sends one request within the timeout and returns its JSON, or throws a ShoalError. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.send(path, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw errorFromResponse(response.status, text);
    return parseJson<T>(text, path);
  }

  /**
   * The event log from `since` on, as it arrives. Without `follow` it ends after the events that
   * exist; with it, it lasts until `signal` aborts or the server ends it. Only the wait for the
   * response headers is bounded: a followed stream may rightly stay quiet for hours.
   */
  async *events(
    options: { since?: number; follow?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<ShoalEvent> {
    const path = `/v1/events?since=${options.since ?? 0}&follow=${options.follow ?? false}`;
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(timeoutError(this.timeoutMs)), this.timeoutMs);
    const signals = [connect.signal, ...(options.signal ? [options.signal] : [])];
    const response = await this.send(path, {
      method: "GET",
      headers: { ...this.headers(false), accept: "text/event-stream" },
      signal: AbortSignal.any(signals),
    }).finally(() => clearTimeout(timer));
    if (!response.ok) throw errorFromResponse(response.status, await response.text());
    if (!response.body) return;
    yield* readEvents(response.body, path);
  }

  private headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (hasBody) headers["content-type"] = "application/json";
    return headers;
  }

  private async send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetch(`${this.address}${path}`, init);
    } catch (error) {
      throw connectionError(this.address, this.timeoutMs, error);
    }
  }
}

async function* readEvents(body: ReadableStream<Uint8Array>, path: string) {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        yield parseJson<ShoalEvent>(message.data, path);
      }
    }
  } finally {
    // Ending early (break, abort) must release the connection, not leave it half read.
    await reader.cancel().catch(() => undefined);
  }
}

const enc = encodeURIComponent;

function query(filter: TaskFilter): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) {
    if (value !== undefined && value !== "") params.set(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function parseJson<T>(text: string, path: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new ShoalError("E_INTERNAL", `the answer to ${path} is not JSON`, { cause: error });
  }
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(errorCodes, code);
}

/** The server's `{"error":{code,message,details}}`, or a plain description of what came back. */
export function errorFromResponse(status: number, text: string): ShoalError {
  let body: { error?: { code?: unknown; message?: unknown; details?: unknown } } | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null; // Not JSON: a proxy or something that is not shoal answered.
  }
  const error = body?.error;
  const message =
    typeof error?.message === "string" ? error.message : `HTTP ${status}: ${text.slice(0, 200)}`;
  if (isErrorCode(error?.code)) {
    return new ShoalError(error.code, message, { details: error.details });
  }
  const code = status === 401 ? "E_UNAUTHORIZED" : status === 404 ? "E_NOT_FOUND" : "E_INTERNAL";
  return new ShoalError(code, message, { details: error?.details ?? null });
}

function timeoutError(timeoutMs: number): Error {
  const error = new Error(`no answer within ${timeoutMs / 1000}s`);
  error.name = "TimeoutError";
  return error;
}

/** Codes of a TLS verification that failed on time: a clock is wrong, here or there. */
const clockCodes = new Set(["CERT_NOT_YET_VALID", "CERT_HAS_EXPIRED"]);

function connectionError(address: string, timeoutMs: number, error: unknown): ShoalError {
  if (error instanceof ShoalError) return error;
  const name = error instanceof Error ? error.name : "";
  const cause = (error as { cause?: { name?: string; code?: unknown } }).cause;
  if (name === "TimeoutError" || cause?.name === "TimeoutError") {
    return new ShoalError(
      "E_NOT_READY",
      `the shoal agent at ${address} did not answer within ${timeoutMs / 1000}s`,
      { cause: error },
    );
  }
  if (name === "AbortError")
    return new ShoalError("E_INTERNAL", "request aborted", { cause: error });
  const code = String((error as { code?: unknown }).code ?? cause?.code ?? "");
  if (clockCodes.has(code)) {
    return new ShoalError(
      "E_UNAUTHORIZED",
      `the certificate of ${address} is not valid now (${code}): check the clocks of both machines`,
      { cause: error },
    );
  }
  if (/CERT|SELF_SIGNED|ERR_TLS|UNABLE_TO/.test(code) || /certificate/.test(String(error))) {
    return new ShoalError(
      "E_UNAUTHORIZED",
      `${address} is not a node of this cluster's CA (${code || String(error)}); is --ca or SHOAL_CA the cluster's ca.pem?`,
      { cause: error },
    );
  }
  // Refused means nothing listens; other codes (EHOSTUNREACH, ENOTFOUND) are worth naming.
  const why = code && code !== "ECONNREFUSED" ? ` (${code})` : "";
  return new ShoalError(
    "E_NOT_READY",
    `no shoal agent answers at ${address}${why}: is \`shoal agent\` running?`,
    { cause: error },
  );
}
