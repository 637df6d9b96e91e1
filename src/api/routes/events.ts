// /v1/events: the event log as server-sent events, from `?since=` (or an EventSource reconnect's
// Last-Event-ID) on. The stream follows new events as they are applied unless `?follow=false`;
// comment lines keep idle connections open.
import { Hono } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import { z } from "zod";
import { ShoalError } from "../../core/errors.ts";
import { limits } from "../../core/limits.ts";
import type { ApiNode } from "../context.ts";
import { validationError } from "../errors.ts";
import { parseQuery, sequenceSchema } from "../query.ts";
import { openStore } from "../store.ts";

const query = z.strictObject({
  since: sequenceSchema.optional(),
  follow: z.enum(["true", "false", "1", "0"]).default("true"),
});

/** Open event streams, so that shutdown can end them (an open stream holds the server open). */
export class EventStreams {
  private readonly open = new Set<() => void>();

  get count(): number {
    return this.open.size;
  }

  add(end: () => void): () => void {
    this.open.add(end);
    return () => this.open.delete(end);
  }

  endAll(): void {
    for (const end of [...this.open]) end();
  }
}

export function eventRoutes(node: ApiNode, streams: EventStreams): Hono {
  const app = new Hono();
  app.get("/", (c) => {
    const { since, follow } = parseQuery(c, query);
    const from = lastEventId(c.req.header("last-event-id")) ?? since ?? 0;
    if (streams.count >= limits.sseClientsMax) {
      throw new ShoalError("E_TOO_MANY", `at most ${limits.sseClientsMax} event streams at once`);
    }
    openStore(node);
    const following = follow === "true" || follow === "1";
    return streamSSE(c, (stream) => pump(node, streams, stream, from, following));
  });
  return app;
}

/** The sequence number an EventSource reconnect resumes after; it overrides `?since`. */
function lastEventId(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const parsed = sequenceSchema.safeParse(header.trim());
  if (!parsed.success) throw validationError(parsed.error, "header.Last-Event-ID");
  return parsed.data;
}

async function pump(
  node: ApiNode,
  streams: EventStreams,
  stream: SSEStreamingApi,
  since: number,
  follow: boolean,
): Promise<void> {
  const { view, log } = openStore(node);
  let ended = false;
  // Set by every applied entry, cleared before each read: an entry applied while a write is
  // blocked by a slow client finds no waiting resolver, so the loop must see it before it waits.
  let dirty = false;
  let wake = (): void => {};
  const end = (): void => {
    ended = true;
    wake();
  };
  const unregister = streams.add(end);
  const unsubscribe = log.onApplied(() => {
    dirty = true;
    wake();
  });
  const heartbeat = setInterval(() => void stream.write(": keep-alive\n\n"), limits.sseHeartbeatMs);
  stream.onAbort(end);
  try {
    await stream.write(": events\n\n");
    let last = since;
    while (!ended) {
      dirty = false;
      const batch = view.events(last);
      for (const event of batch) {
        await stream.writeSSE({ id: String(event.seq), data: JSON.stringify(event) });
        last = event.seq;
      }
      if (batch.length === limits.eventsPageMax) continue;
      if (!follow) break;
      await new Promise<void>((resolve) => {
        if (dirty || ended) resolve();
        else wake = resolve;
      });
      wake = () => {};
    }
  } finally {
    clearInterval(heartbeat);
    unsubscribe();
    unregister();
  }
}
