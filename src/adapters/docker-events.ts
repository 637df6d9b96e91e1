// Docker's event stream, made dependable: the engine's stream ends silently when the engine
// restarts or the connection idles out, and a chunk may hold several events or half of one.
// This splits on newlines, reconnects with `since` just before the last event seen, drops the
// replayed duplicates, and tells the subscriber after each reconnect so it can re-list.
import { StringDecoder } from "node:string_decoder";
import {
  type RuntimeEvent,
  type RuntimeEventAction,
  type RuntimeEventHandlers,
  type RuntimeHealth,
  runtimeEventActions,
} from "../agent/runtime.ts";
import { limits } from "../core/limits.ts";

/** Attributes the engine puts beside the container's labels on an event's Actor. */
const nonLabelAttributes = new Set(["name", "image", "exitCode", "signal"]);

export interface DockerEventStreamOptions {
  open(sinceSeconds: number | undefined, abortSignal: AbortSignal): Promise<NodeJS.ReadableStream>;
  labels: Record<string, string>;
  handlers: RuntimeEventHandlers;
  describeError(error: unknown): string;
}

export class DockerEventStream {
  private closed = false;
  private connected = false;
  private attempt = 0;
  private abort: AbortController | null = null;
  private stream: NodeJS.ReadableStream | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly startedSeconds = Math.floor(Date.now() / 1000);
  private lastEventSeconds: number | null = null;
  private readonly seenKeys = new Set<string>();
  private readonly seenOrder: string[] = [];

  constructor(private readonly options: DockerEventStreamOptions) {}

  start(): void {
    void this.connect(undefined);
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.abort?.abort();
    const stream = this.stream as (NodeJS.ReadableStream & { destroy?: () => void }) | null;
    stream?.destroy?.();
    this.stream = null;
  }

  private async connect(sinceSeconds: number | undefined): Promise<void> {
    if (this.closed) return;
    const controller = new AbortController();
    this.abort = controller;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.options.open(sinceSeconds, controller.signal);
    } catch (error) {
      this.lost(controller, this.options.describeError(error));
      return;
    }
    if (this.closed || controller.signal.aborted) {
      (stream as { destroy?: () => void }).destroy?.();
      return;
    }
    this.stream = stream;
    this.attempt = 0;
    this.setConnected(true, "");
    this.read(stream, controller);
  }

  private read(stream: NodeJS.ReadableStream, controller: AbortController): void {
    const decoder = new StringDecoder("utf8");
    let buffer = "";
    stream.on("data", (chunk: Buffer | string) => {
      buffer += typeof chunk === "string" ? chunk : decoder.write(chunk);
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        this.handleLine(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
      }
      if (buffer.length > limits.dockerEventLineBytesMax) {
        this.lost(controller, `an event line exceeded ${limits.dockerEventLineBytesMax} bytes`);
      }
    });
    stream.on("end", () => this.lost(controller, "the engine ended the event stream"));
    stream.on("close", () => this.lost(controller, "the event stream closed"));
    stream.on("error", (error: unknown) =>
      this.lost(controller, this.options.describeError(error)),
    );
  }

  /** One connection is lost once: `end`, `close` and `error` may all fire for it. */
  private lost(controller: AbortController, message: string): void {
    if (this.closed || this.abort !== controller) return;
    this.abort = null;
    controller.abort();
    (this.stream as { destroy?: () => void } | null)?.destroy?.();
    this.stream = null;
    this.setConnected(false, message);
    const delayMs = Math.min(
      limits.dockerEventsReconnectMsMax,
      limits.dockerEventsReconnectMsMin * 2 ** this.attempt,
    );
    this.attempt = Math.min(this.attempt + 1, 30);
    // Ask for events since just before the last one seen; the duplicates are dropped on arrival.
    const since = (this.lastEventSeconds ?? this.startedSeconds) - 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect(since);
    }, delayMs);
  }

  private setConnected(connected: boolean, message: string): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.options.handlers.onStreamState?.({ connected, message });
  }

  private handleLine(line: string): void {
    const text = line.trim();
    if (text === "" || this.closed) return;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      // A line that is not JSON cannot be an event; the stream goes on with the next line.
      return;
    }
    const event = parseEvent(raw);
    if (!event || !this.isNew(event.key, event.seconds)) return;
    if (!hasLabels(event.event.labels, this.options.labels)) return;
    this.options.handlers.onEvent(event.event);
  }

  private isNew(key: string, seconds: number): boolean {
    this.lastEventSeconds = Math.max(this.lastEventSeconds ?? 0, seconds);
    if (this.seenKeys.has(key)) return false;
    this.seenKeys.add(key);
    this.seenOrder.push(key);
    if (this.seenOrder.length > limits.dockerEventDedupeKeysMax) {
      const oldest = this.seenOrder.shift();
      if (oldest !== undefined) this.seenKeys.delete(oldest);
    }
    return true;
  }
}

interface RawEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

interface ParsedEvent {
  key: string;
  seconds: number;
  event: RuntimeEvent;
}

/** Parses one engine event; null for anything that is not a container event shoal uses. */
export function parseEvent(value: unknown): ParsedEvent | null {
  const raw = value as RawEvent;
  if (!raw || typeof raw !== "object" || raw.Type !== "container") return null;
  const actionText = raw.Action ?? "";
  // Health events read "health_status: healthy"; exec events "exec_start: sh -c ...".
  const [actionWord = "", detail = ""] = actionText.split(":").map((part) => part.trim());
  if (!runtimeEventActions.includes(actionWord as RuntimeEventAction)) return null;
  const action = actionWord as RuntimeEventAction;
  const id = raw.Actor?.ID ?? "";
  if (id === "") return null;
  const attributes = raw.Actor?.Attributes ?? {};
  const labels: Record<string, string> = {};
  for (const [key, attribute] of Object.entries(attributes)) {
    if (!nonLabelAttributes.has(key)) labels[key] = attribute;
  }
  const timeNano = raw.timeNano ?? (raw.time ?? 0) * 1e9;
  const exit = action === "die" ? Number.parseInt(attributes.exitCode ?? "", 10) : Number.NaN;
  return {
    key: `${id}:${actionText}:${timeNano}`,
    seconds: Math.floor(timeNano / 1e9),
    event: {
      containerId: id,
      action,
      labels,
      exitCode: Number.isNaN(exit) ? null : exit,
      health: action === "health_status" ? toHealth(detail) : null,
      timeMs: Math.floor(timeNano / 1e6),
    },
  };
}

function toHealth(text: string): RuntimeHealth | null {
  return text === "starting" || text === "healthy" || text === "unhealthy" ? text : null;
}

function hasLabels(actual: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([key, value]) => actual[key] === value);
}
