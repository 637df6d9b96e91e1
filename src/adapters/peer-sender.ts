// Sends Raft messages to peers: on one long-lived stream per peer (peer-stream.ts), batched
// into frames, or, for snapshots and peers without streams, as POSTs to /internal/raft with a few
// requests in flight per peer, all over mutual TLS. A full queue or stream drops messages: Raft
// resends what matters. The peer's answers (acknowledgements, votes) come back on the same stream
// or in the response, not in a request of their own; only what the peer asked says of itself to
// this node is taken from them.
import { limits } from "../core/limits.ts";
import type { Message, SnapshotMessage } from "../raft/types.ts";
import { postJson } from "./http-post.ts";
import { decodeAnswers, encodeMessages } from "./peer-codec.ts";
import { PeerStream } from "./peer-stream.ts";
import type { PeerWire } from "./peer-wire.ts";
import type { PeerSender } from "./raft-command-log.ts";
import { snapshotChunks, snapshotPath } from "./snapshot-chunks.ts";

export interface HttpPeerSenderOptions {
  nodeId: string;
  wire: PeerWire;
  /** The base URL of a member (`http://10.0.0.5:7420`), or null while it is unknown. */
  resolve: (memberId: string) => string | null;
  onError?: (memberId: string, error: unknown) => void;
  /** Takes the peer's answers (acknowledgements, votes) that came back in the response. */
  onAnswers?: (messages: Message[]) => void;
}

interface PeerQueue {
  messages: Message[];
  inFlight: number;
}

export const raftPath = "/internal/raft";

export class HttpPeerSender implements PeerSender {
  private readonly queues = new Map<string, PeerQueue>();
  /** Peers a snapshot is being sent to: one transfer per peer at a time. */
  private readonly snapshotting = new Set<string>();
  private readonly streams = new Map<string, { stream: PeerStream; base: string }>();
  /** When a peer's next stream may be opened, after one failed or closed. */
  private readonly retryAt = new Map<string, number>();
  /** Peers without streams (an older shoal), sent requests until then. */
  private readonly fallbackUntil = new Map<string, number>();
  private closed = false;

  constructor(private readonly options: HttpPeerSenderOptions) {}

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const message of messages) {
      // The core sends a snapshot again while it waits; a transfer under way already carries it.
      if (message.type === "snapshot" && this.snapshotting.has(message.to)) continue;
      const queue = this.queueOf(message.to);
      if (queue.messages.length >= limits.peerQueueMessagesMax) continue;
      queue.messages.push(message);
    }
    for (const [peer, queue] of this.queues) this.pump(peer, queue);
  }

  private queueOf(peer: string): PeerQueue {
    let queue = this.queues.get(peer);
    if (!queue) {
      queue = { messages: [], inFlight: 0 };
      this.queues.set(peer, queue);
    }
    return queue;
  }

  /**
   * Sends what the peer has queued: on its stream when one is open or opening, else (a snapshot,
   * or a peer without streams) as requests while a slot is free.
   */
  private pump(peer: string, queue: PeerQueue): void {
    while (queue.messages.length > 0) {
      const route = queue.messages[0]?.type === "snapshot" ? "requests" : this.streamTo(peer);
      if (route === "wait") {
        // A stream failed a moment ago: drop what is queued (Raft resends) until it may retry.
        queue.messages = [];
        return;
      }
      if (route === "requests" && queue.inFlight >= limits.peerRequestsInFlightMax) return;
      const batch = this.takeBatch(queue);
      if (route !== "requests") {
        route.send(encodeMessages(batch));
        continue;
      }
      queue.inFlight += 1;
      void this.post(peer, batch).finally(() => {
        queue.inFlight -= 1;
        this.pump(peer, queue);
      });
    }
  }

  /** The peer's stream (opened now if need be), or how to send without one. */
  private streamTo(peer: string): PeerStream | "requests" | "wait" {
    const now = performance.now();
    if ((this.fallbackUntil.get(peer) ?? 0) > now) return "requests";
    const base = this.options.resolve(peer);
    if (!base) return "wait";
    const current = this.streams.get(peer);
    if (current && !current.stream.closed && current.base === base) return current.stream;
    current?.stream.close();
    if ((this.retryAt.get(peer) ?? 0) > now) return "wait";
    this.retryAt.set(peer, now + limits.peerStreamRetryMs);
    const stream = new PeerStream(base, {
      peerId: peer,
      wire: this.options.wire,
      onAnswer: (payload) => this.answered(peer, payload),
      onRefused: () =>
        this.fallbackUntil.set(peer, performance.now() + limits.peerStreamFallbackMs),
      onError: (error) => this.options.onError?.(peer, error),
    });
    this.streams.set(peer, { stream, base });
    return stream;
  }

  private answered(peer: string, payload: string): void {
    if (this.closed) return;
    try {
      const answers = this.fromPeer(peer, decodeAnswers(payload));
      if (answers.length > 0) this.options.onAnswers?.(answers);
    } catch (error) {
      this.options.onError?.(peer, error);
    }
  }

  /**
   * What `peer` says of itself to this node: its certificate proves who answered, and a message
   * in its answer that claims another sender or another addressee is dropped and reported.
   */
  private fromPeer(peer: string, messages: Message[]): Message[] {
    const own = messages.filter((m) => m.from === peer && m.to === this.options.nodeId);
    if (own.length < messages.length) {
      const stray = messages.find((m) => m.from !== peer || m.to !== this.options.nodeId);
      this.options.onError?.(
        peer,
        new Error(
          `dropped a ${stray?.type} from ${stray?.from} to ${stray?.to} in ${peer}'s answer`,
        ),
      );
    }
    return own;
  }

  /** Takes messages up to a body budget; a snapshot travels alone. */
  private takeBatch(queue: PeerQueue): Message[] {
    const batch: Message[] = [];
    let bytes = 0;
    while (queue.messages.length > 0) {
      const next = queue.messages[0] as Message;
      const size = approximateSize(next);
      if (batch.length > 0 && (bytes + size > limits.peerBatchBytesMax || next.type === "snapshot"))
        break;
      batch.push(next);
      queue.messages.shift();
      bytes += size;
      if (next.type === "snapshot") break;
    }
    return batch;
  }

  private async post(peer: string, batch: Message[]): Promise<void> {
    const base = this.options.resolve(peer);
    if (!base) return;
    const [first] = batch;
    if (first?.type === "snapshot") {
      await this.postSnapshot(peer, base, first);
      return;
    }
    const answer = await this.postTo(peer, base, raftPath, encodeMessages(batch));
    if (answer === null || this.closed) return;
    try {
      const answers = this.fromPeer(peer, decodeAnswers(answer));
      if (answers.length > 0) this.options.onAnswers?.(answers);
    } catch (error) {
      this.options.onError?.(peer, error);
    }
  }

  /** One chunk after another; the first refused chunk ends the transfer (the core retries). */
  private async postSnapshot(peer: string, base: string, message: SnapshotMessage): Promise<void> {
    if (this.snapshotting.has(peer)) return;
    this.snapshotting.add(peer);
    try {
      for (const chunk of snapshotChunks(message)) {
        if (this.closed) return;
        const sent = await this.postTo(peer, base, snapshotPath, JSON.stringify(chunk));
        if (sent === null) return;
      }
    } finally {
      this.snapshotting.delete(peer);
    }
  }

  /** The answer's body, or null when the peer refused or could not be reached. */
  private async postTo(
    peer: string,
    base: string,
    path: string,
    body: string,
  ): Promise<string | null> {
    const { wire } = this.options;
    try {
      const agent = wire.agentFor(peer);
      const timeoutMs = limits.peerRequestTimeoutMs;
      const answer = await postJson(`${base}${path}`, agent, body, timeoutMs, wire.headers);
      if (answer.status === 200) return answer.text;
      this.options.onError?.(
        peer,
        new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`),
      );
    } catch (error) {
      this.options.onError?.(peer, error);
    }
    return null;
  }

  close(): void {
    this.closed = true;
    this.queues.clear();
    for (const { stream } of this.streams.values()) stream.close();
    this.streams.clear();
  }
}

function approximateSize(message: Message): number {
  if (message.type === "append")
    return 200 + message.entries.reduce((sum, e) => sum + e.data.byteLength * 1.4, 0);
  if (message.type === "snapshot") return 200 + (message.data?.byteLength ?? 0) * 1.4;
  return 200;
}
