// The ContainerRuntime port on a real Docker engine, through dockerode. The engine is found
// through an explicit `dockerHost` (the CLI's --docker-host) or DOCKER_HOST, as Docker's CLI does.
// Each pitfall of dockerode handled here (a pull that fails inside its progress stream, errors
// that carry only a status code) is explained where it is handled.
import { Agent } from "node:http";
import Docker from "dockerode";
import type {
  ContainerRuntime,
  EngineInfo,
  RuntimeContainerDetails,
  RuntimeContainerSpec,
  RuntimeContainerState,
  RuntimeContainerSummary,
  RuntimeEventHandlers,
  RuntimeEventSubscription,
  RuntimeHealth,
} from "../agent/runtime.ts";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { TaskContainerPort } from "../core/types.ts";
import { DockerEventStream } from "./docker-events.ts";

const defaultDockerHost = "unix:///var/run/docker.sock";

export interface DockerRuntimeOptions {
  /** `unix:///path` or `tcp://host:port`; defaults to DOCKER_HOST, then the local socket. */
  dockerHost?: string | undefined;
  /** Per-request deadline; requests never share a client-wide idle timeout. */
  requestTimeoutMs?: number | undefined;
}

interface EngineCalls {
  ping(options: { abortSignal: AbortSignal }): Promise<unknown>;
  info(options: { abortSignal: AbortSignal }): Promise<Record<string, unknown>>;
  version(options: { abortSignal: AbortSignal }): Promise<Record<string, unknown>>;
}

type Connection = Pick<Docker.DockerOptions, "socketPath" | "host" | "port" | "protocol">;

/** Parses a Docker host address the way Docker's CLI reads DOCKER_HOST. */
export function parseDockerHost(address: string): Connection {
  if (address.startsWith("unix://")) {
    const socketPath = address.slice("unix://".length);
    if (socketPath === "") throw invalidHost(address);
    return { socketPath, host: undefined, port: undefined, protocol: "http" };
  }
  const withScheme = address.includes("://") ? address : `tcp://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (error) {
    throw invalidHost(address, error);
  }
  if (url.protocol !== "tcp:" && url.protocol !== "http:") throw invalidHost(address);
  if (url.hostname === "" || url.port === "") throw invalidHost(address);
  return { socketPath: undefined, host: url.hostname, port: url.port, protocol: "http" };
}

function invalidHost(address: string, cause?: unknown): ShoalError {
  return new ShoalError(
    "E_VALIDATION",
    `docker host "${address}" is not unix:///path/to/socket or tcp://host:port`,
    { cause },
  );
}

export class DockerRuntime implements ContainerRuntime {
  readonly dockerHost: string;
  private readonly docker: Docker;
  /** The event stream gets its own client and agent so it never holds a socket others need. */
  private readonly eventsDocker: Docker;
  private readonly eventsAgent = new Agent({ keepAlive: false });
  private readonly requestTimeoutMs: number;
  private readonly streams = new Set<DockerEventStream>();

  constructor(options: DockerRuntimeOptions = {}) {
    this.dockerHost = options.dockerHost ?? process.env.DOCKER_HOST ?? defaultDockerHost;
    this.requestTimeoutMs = options.requestTimeoutMs ?? limits.dockerRequestTimeoutMs;
    const connection = parseDockerHost(this.dockerHost);
    // `timeout` is set to undefined on purpose: dockerode applies it as an idle timeout to every
    // request, streams included (and DOCKER_CLIENT_TIMEOUT would otherwise set it).
    this.docker = new Docker({ ...connection, timeout: undefined });
    const eventsOptions = { ...connection, timeout: undefined, agent: this.eventsAgent };
    this.eventsDocker = new Docker(eventsOptions as Docker.DockerOptions);
  }

  async ping(): Promise<void> {
    await this.call("ping", (abortSignal) => this.engine().ping({ abortSignal }));
  }

  async engineInfo(): Promise<EngineInfo> {
    const info = await this.call("info", (abortSignal) => this.engine().info({ abortSignal }));
    const version = await this.call("version", (abortSignal) =>
      this.engine().version({ abortSignal }),
    );
    return {
      name: String(info.Name ?? ""),
      version: String(version.Version ?? ""),
      apiVersion: String(version.ApiVersion ?? ""),
      os: String(version.Os ?? info.OSType ?? ""),
      arch: String(version.Arch ?? info.Architecture ?? ""),
      cpus: Number(info.NCPU ?? 0),
      memoryMb: Math.floor(Number(info.MemTotal ?? 0) / (1024 * 1024)),
    };
  }

  async list(labels: Record<string, string>): Promise<RuntimeContainerSummary[]> {
    const containers = await this.call("list containers", (abortSignal) =>
      this.docker.listContainers({
        all: true,
        filters: { label: labelFilters(labels) },
        abortSignal,
      }),
    );
    // The engine filtered already; checking again means a bad filter can never widen the set.
    return containers.filter((c) => hasLabels(c.Labels ?? {}, labels)).map(toSummary);
  }

  async run(spec: RuntimeContainerSpec): Promise<RuntimeContainerDetails> {
    const container = await this.create(spec);
    try {
      await this.call(`start ${spec.name}`, (abortSignal) => container.start({ abortSignal }));
      // Host ports the engine picked are known only now, in NetworkSettings.Ports.
      const details = await this.inspect(container.id);
      if (!details)
        throw new ShoalError("E_INTERNAL", `container ${spec.name} vanished after start`);
      return details;
    } catch (error) {
      await this.removeQuietly(container.id, error);
      throw error;
    }
  }

  async pull(image: string, signal: AbortSignal): Promise<void> {
    // The caller's signal ends a pull early (the agent stops); the deadline bounds a stalled one.
    const deadline = AbortSignal.timeout(limits.imagePullMsMax);
    const abortSignal = AbortSignal.any([signal, deadline]);
    let failure: string | null;
    try {
      failure = await this.pullToEnd(image, abortSignal);
    } catch (error) {
      // No status and no abort: the engine itself did not answer, which is not the image's fault.
      if (!abortSignal.aborted && statusOf(error) === undefined) {
        throw this.toShoalError(`pull ${image}`, error);
      }
      failure = engineMessage(error);
    }
    // A stream cut by the abort may end as if it finished: the signal is the truth.
    if (deadline.aborted) failure = `no image within ${limits.imagePullMsMax} ms`;
    else if (signal.aborted) failure = "cancelled";
    if (failure === null) return;
    const message = `image not found: ${image} (pull failed: ${failure})`;
    throw new ShoalError("E_IMAGE_NOT_FOUND", message, {
      details: { dockerHost: this.dockerHost },
    });
  }

  async inspect(containerId: string): Promise<RuntimeContainerDetails | null> {
    try {
      const info = await this.call(`inspect ${containerId}`, (abortSignal) =>
        this.docker.getContainer(containerId).inspect({ abortSignal }),
      );
      return toDetails(info);
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  async start(containerId: string): Promise<void> {
    try {
      await this.call(`start ${containerId}`, (abortSignal) =>
        this.docker.getContainer(containerId).start({ abortSignal }),
      );
    } catch (error) {
      // 304: already running, which is what the caller wanted.
      const status = statusOf(error);
      if (status === 304) return;
      if (status === 404) throw new ShoalError("E_NOT_FOUND", `no container ${containerId}`);
      throw error;
    }
  }

  async stop(containerId: string, timeoutSeconds: number): Promise<void> {
    const deadlineMs = this.requestTimeoutMs + timeoutSeconds * 1000;
    try {
      await this.call(
        `stop ${containerId}`,
        (abortSignal) =>
          this.docker.getContainer(containerId).stop({ t: timeoutSeconds, abortSignal }),
        deadlineMs,
      );
    } catch (error) {
      // 304: already stopped; 404: already gone. Both are what the caller wanted.
      const status = statusOf(error);
      if (status === 304 || status === 404) return;
      throw error;
    }
  }

  async remove(containerId: string): Promise<void> {
    try {
      await this.call(`remove ${containerId}`, (abortSignal) =>
        this.docker.getContainer(containerId).remove({ force: true, v: true, abortSignal }),
      );
    } catch (error) {
      // 404: gone already; 409 "removal already in progress": someone else is removing it.
      const status = statusOf(error);
      if (status === 404) return;
      if (status === 409 && /already in progress/i.test(engineMessage(error))) return;
      throw error;
    }
  }

  events(labels: Record<string, string>, handlers: RuntimeEventHandlers): RuntimeEventSubscription {
    const stream = new DockerEventStream({
      open: (since, abortSignal) => this.openEvents(labels, since, abortSignal),
      labels,
      handlers,
      describeError: (error) => this.toShoalError("events", error).message,
    });
    this.streams.add(stream);
    stream.start();
    return {
      close: () => {
        this.streams.delete(stream);
        stream.close();
      },
    };
  }

  async close(): Promise<void> {
    for (const stream of this.streams) stream.close();
    this.streams.clear();
    this.eventsAgent.destroy();
  }

  /** dockerode accepts an abort signal on these calls; its type declarations do not say so. */
  private engine(): EngineCalls {
    return this.docker as unknown as EngineCalls;
  }

  private async openEvents(
    labels: Record<string, string>,
    sinceSeconds: number | undefined,
    abortSignal: AbortSignal,
  ): Promise<NodeJS.ReadableStream> {
    const filters = { type: ["container"], label: labelFilters(labels) };
    const options = sinceSeconds === undefined ? { filters } : { filters, since: sinceSeconds };
    try {
      return await this.eventsDocker.getEvents({ ...options, abortSignal } as object);
    } catch (error) {
      throw this.toShoalError("events", error);
    }
  }

  /**
   * `pull()` resolves once the engine starts its progress stream, and the engine reports a failed
   * pull INSIDE that stream: the stream is read to its end and its first error returned, or null.
   */
  private async pullToEnd(image: string, abortSignal: AbortSignal): Promise<string | null> {
    const stream = await this.docker.pull(image, { abortSignal });
    return new Promise((resolve, reject) => {
      let failure: string | null = null;
      this.docker.modem.followProgress(
        stream,
        (error) => (error ? reject(error) : resolve(failure)),
        (event: unknown) => {
          failure ??= progressError(event);
        },
      );
    });
  }

  private async create(spec: RuntimeContainerSpec): Promise<Docker.Container> {
    try {
      // Never pulls: a pull can take minutes, so the agent runs it apart from the reconcile (see
      // `pull`) and retries the create once the image is in.
      return await this.call(`create ${spec.name}`, (abortSignal) =>
        this.docker.createContainer({
          ...toCreateOptions(spec),
          abortSignal,
        } as Docker.ContainerCreateOptions),
      );
    } catch (error) {
      if (error instanceof ShoalError && error.code === "E_NOT_FOUND") {
        if (/no such image/i.test(error.message)) {
          throw new ShoalError("E_IMAGE_NOT_FOUND", `image not found: ${spec.image}`, {
            cause: error,
          });
        }
      }
      throw error;
    }
  }

  private async removeQuietly(containerId: string, reason: unknown): Promise<void> {
    try {
      await this.remove(containerId);
    } catch (error) {
      // The original failure matters more; the orphan sweep removes this container later.
      (reason as { suppressed?: unknown }).suppressed = error;
    }
  }

  /** Runs one engine request with its own deadline and maps its failure to a ShoalError. */
  private async call<T>(
    what: string,
    request: (abortSignal: AbortSignal) => Promise<T>,
    deadlineMs = this.requestTimeoutMs,
  ): Promise<T> {
    try {
      return await request(AbortSignal.timeout(deadlineMs));
    } catch (error) {
      throw this.toShoalError(what, error, deadlineMs);
    }
  }

  private toShoalError(
    what: string,
    error: unknown,
    deadlineMs = this.requestTimeoutMs,
  ): ShoalError {
    if (error instanceof ShoalError) return error;
    const status = statusOf(error);
    const details = { statusCode: status, dockerHost: this.dockerHost };
    if (status === undefined) {
      const message = unreachableMessage(error, deadlineMs);
      return new ShoalError(
        "E_DOCKER_UNAVAILABLE",
        `docker engine at ${this.dockerHost} is unreachable: ${message}`,
        { cause: error, details },
      );
    }
    const text = `docker ${what}: ${engineMessage(error)}`;
    return new ShoalError(codeForStatus(status), text, { cause: error, details });
  }
}

function codeForStatus(
  status: number,
): "E_NOT_FOUND" | "E_CONFLICT" | "E_VALIDATION" | "E_INTERNAL" {
  if (status === 404) return "E_NOT_FOUND";
  if (status === 409) return "E_CONFLICT";
  if (status === 400) return "E_VALIDATION";
  return "E_INTERNAL";
}

function statusOf(error: unknown): number | undefined {
  if (error instanceof ShoalError) {
    const details = error.details as { statusCode?: number } | undefined;
    return details?.statusCode;
  }
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The engine's own message ("No such image: x"), without dockerode's "(HTTP code ...)" prefix. */
function engineMessage(error: unknown): string {
  if (error instanceof ShoalError) return error.message;
  const json = (error as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === "string") return json.message;
  const message = error instanceof Error ? error.message : String(error);
  // A streaming request's error carries no `json`; its message is "(HTTP code 404) unexpected - ...".
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
}

/** A pull's progress event that reports a failure, as `{ error, errorDetail: { message } }`. */
function progressError(event: unknown): string | null {
  const { error, errorDetail } = (event ?? {}) as { error?: unknown; errorDetail?: unknown };
  const detail = (errorDetail as { message?: unknown } | null | undefined)?.message;
  if (typeof detail === "string" && detail !== "") return detail;
  if (typeof error === "string" && error !== "") return error;
  return errorDetail === undefined && error === undefined ? null : "the engine reported an error";
}

function unreachableMessage(error: unknown, deadlineMs: number): string {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === "AbortError" || name === "TimeoutError") return `no answer within ${deadlineMs} ms`;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === "string" && !message.includes(code) ? `${code} ${message}` : message;
}

function labelFilters(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`);
}

function hasLabels(actual: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => actual[key] === value);
}

function toCreateOptions(spec: RuntimeContainerSpec): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of spec.ports) {
    const key = `${port.container}/${port.protocol}`;
    exposed[key] = {};
    // HostIp 0.0.0.0: otherwise IPv4 and IPv6 may get different random ports (moby #42442).
    const hostPort = port.host ? String(port.host) : "";
    bindings[key] = [{ HostIp: "0.0.0.0", HostPort: hostPort }];
  }
  return {
    name: spec.name,
    Image: spec.image,
    Cmd: spec.command,
    Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
    Labels: spec.labels,
    ExposedPorts: exposed,
    Healthcheck: spec.healthcheck ? toHealthcheck(spec.healthcheck) : undefined,
    HostConfig: {
      PortBindings: bindings,
      NanoCpus: spec.cpu ? Math.round(spec.cpu * 1e9) : undefined,
      Memory: spec.memoryMb ? Math.round(spec.memoryMb * 1024 * 1024) : undefined,
      Mounts: spec.mounts.map((mount) => ({
        Type: mount.source.startsWith("/") ? ("bind" as const) : ("volume" as const),
        Source: mount.source,
        Target: mount.target,
        ReadOnly: mount.readOnly,
      })),
      // The agent decides about restarts (it never restarts; the scheduler replaces tasks), and
      // AutoRemove would lose the exit code.
      RestartPolicy: { Name: "no" },
      // A small init as PID 1 forwards SIGTERM: a program that installs no handler of its own
      // (busybox httpd) would otherwise ignore it and every stop would wait for the SIGKILL.
      Init: true,
      AutoRemove: false,
    },
  };
}

const healthcheckForms = new Set(["CMD", "CMD-SHELL", "NONE"]);
const nanosPerMs = 1_000_000;

function toHealthcheck(check: NonNullable<RuntimeContainerSpec["healthcheck"]>) {
  // A bare argv is the exec form; a command that names its form already passes unchanged.
  const first = check.command[0] ?? "";
  const test = healthcheckForms.has(first) ? check.command : ["CMD", ...check.command];
  return {
    Test: test,
    Interval: check.intervalMs * nanosPerMs,
    Timeout: check.timeoutMs * nanosPerMs,
    Retries: check.retries,
    StartPeriod: check.startPeriodMs * nanosPerMs,
  };
}

const knownStates = new Set<RuntimeContainerState>([
  "created",
  "running",
  "paused",
  "exited",
  "dead",
  "removing",
]);

function toState(state: string): RuntimeContainerState {
  const lower = state.toLowerCase();
  if (knownStates.has(lower as RuntimeContainerState)) return lower as RuntimeContainerState;
  // "restarting" cannot happen (restart policy "no"); count it as running while it lasts.
  return "running";
}

function toHealth(status: string | undefined): RuntimeHealth | null {
  if (status === "starting" || status === "healthy" || status === "unhealthy") return status;
  return null;
}

/** The list API has no health field; its Status reads "Up 3 seconds (healthy)". */
function healthFromStatus(status: string): RuntimeHealth | null {
  const match = /\((health: starting|healthy|unhealthy)\)/.exec(status);
  if (!match) return null;
  return match[1] === "health: starting" ? "starting" : toHealth(match[1]);
}

function toSummary(container: Docker.ContainerInfo): RuntimeContainerSummary {
  const ports: TaskContainerPort[] = [];
  for (const port of container.Ports ?? []) {
    // Only the IPv4 binding: shoal publishes on 0.0.0.0, and a port appears once per family.
    if (port.IP?.includes(":")) continue;
    const protocol = port.Type === "udp" ? "udp" : "tcp";
    ports.push({ container: port.PrivatePort, host: port.PublicPort ?? null, protocol });
  }
  return {
    id: container.Id,
    name: (container.Names?.[0] ?? "").replace(/^\//, ""),
    image: container.Image,
    labels: container.Labels ?? {},
    state: toState(container.State),
    health: healthFromStatus(container.Status ?? ""),
    ports: dedupePorts(ports),
  };
}

function dedupePorts(ports: TaskContainerPort[]): TaskContainerPort[] {
  const byKey = new Map<string, TaskContainerPort>();
  for (const port of ports) {
    const key = `${port.container}/${port.protocol}`;
    const seen = byKey.get(key);
    if (!seen || (seen.host === null && port.host !== null)) byKey.set(key, port);
  }
  return [...byKey.values()];
}

function portsFromInspect(info: Docker.ContainerInspectInfo): TaskContainerPort[] {
  const ports: TaskContainerPort[] = [];
  const published = (info.NetworkSettings?.Ports ?? {}) as Record<
    string,
    { HostIp: string; HostPort: string }[] | null
  >;
  for (const [key, bindings] of Object.entries(published)) {
    const [number, protocol] = key.split("/");
    const binding = (bindings ?? []).find((b) => !b.HostIp.includes(":")) ?? bindings?.[0];
    ports.push({
      container: Number(number),
      host: binding ? Number(binding.HostPort) : null,
      protocol: protocol === "udp" ? "udp" : "tcp",
    });
  }
  return ports;
}

function toTimeMs(text: string | undefined): number | null {
  // The engine writes 0001-01-01T00:00:00Z for "never".
  if (!text || text.startsWith("0001-")) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

function toDetails(info: Docker.ContainerInspectInfo): RuntimeContainerDetails {
  const state = toState(info.State.Status);
  const exited = state === "exited" || state === "dead";
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ""),
    image: info.Config.Image,
    labels: info.Config.Labels ?? {},
    state,
    health: toHealth(info.State.Health?.Status),
    ports: portsFromInspect(info),
    exitCode: exited ? info.State.ExitCode : null,
    oomKilled: info.State.OOMKilled,
    error: info.State.Error ?? "",
    startedAtMs: toTimeMs(info.State.StartedAt),
    finishedAtMs: exited ? toTimeMs(info.State.FinishedAt) : null,
  };
}
