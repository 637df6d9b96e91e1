// An in-memory twin of the ContainerRuntime port for unit tests: deterministic ids and host
// ports, and levers a test pulls to kill a container, lose an image, hold a pull, or take the
// engine down.
import type {
  ContainerRuntime,
  EngineInfo,
  RuntimeContainerDetails,
  RuntimeContainerSpec,
  RuntimeContainerSummary,
  RuntimeEvent,
  RuntimeEventAction,
  RuntimeEventHandlers,
  RuntimeEventSubscription,
  RuntimeHealth,
} from "../agent/runtime.ts";
import { ShoalError } from "../core/errors.ts";

/** The first host port the twin hands out, as Docker's ephemeral range begins. */
const hostPortFirst = 32768;

interface MemoryContainer {
  details: RuntimeContainerDetails;
  spec: RuntimeContainerSpec;
}

interface Subscriber {
  labels: Record<string, string>;
  handlers: RuntimeEventHandlers;
}

export interface MemoryRuntimeOptions {
  /** Images the engine has; `run` of any other image fails with E_IMAGE_NOT_FOUND. */
  images?: string[];
  /** Images "in the registry": `pull` of one brings it into the engine; of any other, fails. */
  registry?: string[];
  /** The time stamped on events; a fixed counter by default, so runs repeat exactly. */
  now?: () => number;
}

export class MemoryRuntime implements ContainerRuntime {
  readonly images: Set<string>;
  readonly registry: Set<string>;
  /** Every call made, in order, e.g. "run shoal-web-httpd-t1"; tests assert on it. */
  readonly calls: string[] = [];
  private readonly containers = new Map<string, MemoryContainer>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly now: () => number;
  private nextId = 1;
  private nextHostPort = hostPortFirst;
  private up = true;
  private tick = 0;
  private pullsHeld = false;
  /** Releases of the pulls that wait for `releasePulls`. */
  private readonly heldPulls = new Set<() => void>();

  constructor(options: MemoryRuntimeOptions = {}) {
    this.images = new Set(options.images ?? []);
    this.registry = new Set(options.registry ?? []);
    this.now = options.now ?? (() => ++this.tick);
  }

  // --- levers for tests ---

  /** Takes the engine down (every call fails, streams drop) or brings it back. */
  setEngineUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    const message = up ? "" : "memory engine is down";
    for (const subscriber of this.subscribers) {
      subscriber.handlers.onStreamState?.({ connected: up, message });
    }
  }

  get engineUp(): boolean {
    return this.up;
  }

  /** Ends a running container as if its process exited with `exitCode` (137 for SIGKILL). */
  kill(containerId: string, exitCode = 137): void {
    const container = this.mustGet(containerId);
    if (container.details.state !== "running") return;
    this.exit(container, exitCode);
  }

  setHealth(containerId: string, health: RuntimeHealth): void {
    const container = this.mustGet(containerId);
    container.details.health = health;
    this.emit(container, "health_status", { health });
  }

  /** Removes a container behind the agent's back, as `docker rm -f` would. */
  destroy(containerId: string): void {
    const container = this.mustGet(containerId);
    if (container.details.state === "running") this.exit(container, 137);
    this.containers.delete(containerId);
    this.emit(container, "destroy");
  }

  /** Adds a container directly, e.g. one that another tool started with its own labels. */
  seed(spec: RuntimeContainerSpec, state: "running" | "exited" = "running"): string {
    const container = this.make(spec);
    if (state === "exited") {
      container.details.state = "exited";
      container.details.exitCode = 0;
    }
    return container.details.id;
  }

  /** Makes every pull wait (as on a slow registry) until `releasePulls`, or until aborted. */
  holdPulls(): void {
    this.pullsHeld = true;
  }

  releasePulls(): void {
    this.pullsHeld = false;
    for (const release of [...this.heldPulls]) release();
  }

  /** Pulls waiting on `holdPulls` right now; an aborted pull stops waiting at once. */
  get pullsWaiting(): number {
    return this.heldPulls.size;
  }

  /** Every container in the engine, whatever its labels. */
  all(): RuntimeContainerDetails[] {
    return [...this.containers.values()].map((c) => structuredClone(c.details));
  }

  specOf(containerId: string): RuntimeContainerSpec {
    return structuredClone(this.mustGet(containerId).spec);
  }

  // --- the port ---

  async ping(): Promise<void> {
    this.check("ping");
  }

  async engineInfo(): Promise<EngineInfo> {
    this.check("engineInfo");
    return {
      name: "memory",
      version: "0.0.0",
      apiVersion: "1.41",
      os: "linux",
      arch: "amd64",
      cpus: 4,
      memoryMb: 8192,
    };
  }

  async list(labels: Record<string, string>): Promise<RuntimeContainerSummary[]> {
    this.check("list");
    return [...this.containers.values()]
      .filter((c) => hasLabels(c.details.labels, labels))
      .map((c) => toSummary(c.details));
  }

  async run(spec: RuntimeContainerSpec): Promise<RuntimeContainerDetails> {
    this.check(`run ${spec.name}`);
    if (!this.images.has(spec.image)) {
      throw new ShoalError("E_IMAGE_NOT_FOUND", `image not found: ${spec.image}`);
    }
    if ([...this.containers.values()].some((c) => c.details.name === spec.name)) {
      throw new ShoalError(
        "E_CONFLICT",
        `docker create ${spec.name}: the container name is already in use`,
      );
    }
    const container = this.make(spec);
    this.emit(container, "create");
    this.emit(container, "start");
    return structuredClone(container.details);
  }

  async pull(image: string, signal: AbortSignal): Promise<void> {
    this.check(`pull ${image}`);
    await this.whileHeld(signal);
    if (signal.aborted) throw pullFailed(image, "cancelled");
    // The engine may have gone down while the pull waited.
    if (!this.up) throw engineDown();
    if (!this.registry.has(image)) throw pullFailed(image, "not in the registry");
    this.images.add(image);
  }

  async inspect(containerId: string): Promise<RuntimeContainerDetails | null> {
    this.check(`inspect ${containerId}`);
    const container = this.containers.get(containerId);
    return container ? structuredClone(container.details) : null;
  }

  async start(containerId: string): Promise<void> {
    this.check(`start ${containerId}`);
    const container = this.containers.get(containerId);
    if (!container) throw new ShoalError("E_NOT_FOUND", `no container ${containerId}`);
    if (container.details.state === "running") return;
    container.details.state = "running";
    container.details.exitCode = null;
    this.emit(container, "start");
  }

  async stop(containerId: string, _timeoutSeconds: number): Promise<void> {
    this.check(`stop ${containerId}`);
    const container = this.containers.get(containerId);
    // SIGTERM to a process that honours it: exit code 143 like a shell killed by TERM.
    if (container?.details.state === "running") this.exit(container, 143);
  }

  async remove(containerId: string): Promise<void> {
    this.check(`remove ${containerId}`);
    const container = this.containers.get(containerId);
    if (!container) return;
    if (container.details.state === "running") this.exit(container, 137);
    this.containers.delete(containerId);
    this.emit(container, "destroy");
  }

  events(labels: Record<string, string>, handlers: RuntimeEventHandlers): RuntimeEventSubscription {
    const subscriber: Subscriber = { labels, handlers };
    this.subscribers.add(subscriber);
    if (this.up) handlers.onStreamState?.({ connected: true, message: "" });
    return { close: () => this.subscribers.delete(subscriber) };
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }

  // --- internals ---

  private check(call: string): void {
    this.calls.push(call);
    if (!this.up) throw engineDown();
  }

  private whileHeld(signal: AbortSignal): Promise<void> {
    if (!this.pullsHeld || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const release = () => {
        this.heldPulls.delete(release);
        signal.removeEventListener("abort", release);
        resolve();
      };
      this.heldPulls.add(release);
      signal.addEventListener("abort", release, { once: true });
    });
  }

  private mustGet(containerId: string): MemoryContainer {
    const container = this.containers.get(containerId);
    if (!container) throw new ShoalError("E_NOT_FOUND", `no such container: ${containerId}`);
    return container;
  }

  private make(spec: RuntimeContainerSpec): MemoryContainer {
    const id = `mem${String(this.nextId++).padStart(9, "0")}`;
    const ports = spec.ports.map((port) => ({
      container: port.container,
      host: port.host ? port.host : this.nextHostPort++,
      protocol: port.protocol,
    }));
    const details: RuntimeContainerDetails = {
      id,
      name: spec.name,
      image: spec.image,
      labels: { ...spec.labels },
      state: "running",
      health: spec.healthcheck ? "starting" : null,
      ports,
      exitCode: null,
      oomKilled: false,
      error: "",
      startedAtMs: this.now(),
      finishedAtMs: null,
    };
    const container = { details, spec: structuredClone(spec) };
    this.containers.set(id, container);
    return container;
  }

  private exit(container: MemoryContainer, exitCode: number): void {
    container.details.state = "exited";
    container.details.exitCode = exitCode;
    container.details.health = null;
    container.details.finishedAtMs = this.now();
    this.emit(container, "die", { exitCode });
  }

  private emit(
    container: MemoryContainer,
    action: RuntimeEventAction,
    extra: { exitCode?: number; health?: RuntimeHealth } = {},
  ): void {
    if (!this.up) return;
    const event: RuntimeEvent = {
      containerId: container.details.id,
      action,
      labels: { ...container.details.labels },
      exitCode: extra.exitCode ?? null,
      health: extra.health ?? null,
      timeMs: this.now(),
    };
    for (const subscriber of [...this.subscribers]) {
      if (hasLabels(event.labels, subscriber.labels)) subscriber.handlers.onEvent(event);
    }
  }
}

function engineDown(): ShoalError {
  return new ShoalError(
    "E_DOCKER_UNAVAILABLE",
    "docker engine at memory:// is unreachable: engine is down",
  );
}

function pullFailed(image: string, why: string): ShoalError {
  return new ShoalError("E_IMAGE_NOT_FOUND", `image not found: ${image} (pull failed: ${why})`);
}

function toSummary(details: RuntimeContainerDetails): RuntimeContainerSummary {
  const { id, name, image, labels, state, health, ports } = structuredClone(details);
  return { id, name, image, labels, state, health, ports };
}

function hasLabels(actual: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => actual[key] === value);
}
