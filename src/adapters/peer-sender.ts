// Sends Raft messages to peers over HTTP: messages for one peer are batched into one signed POST
// to /internal/raft, a few requests are kept in flight per peer (pipelining on keep-alive
// connections), and a full queue drops messages — Raft resends what matters. The peer's answers
// to a batch (acknowledgements, votes) come back in the response, not in a request of their own.

import { signPeerRequest } from "../api/peer-auth.ts";
import type { Clock } from "../core/clock.ts";
import { limits } from "../core/limits.ts";
import type { Message, SnapshotMessage } from "../raft/types.ts";
import { postJson } from "./http-post.ts";
import { decodeAnswers, encodeMessages } from "./peer-codec.ts";
import type { PeerSender } from "./raft-command-log.ts";
import { snapshotChunks, snapshotPath } from "./snapshot-chunks.ts";

export interface HttpPeerSenderOptions {
  nodeId: string;
  key: Buffer;
  clock: Clock;
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

  /** Starts requests while the peer has queued messages and a free in-flight slot. */
  private pump(peer: string, queue: PeerQueue): void {
    while (queue.messages.length > 0 && queue.inFlight < limits.peerRequestsInFlightMax) {
      const batch = this.takeBatch(queue);
      queue.inFlight += 1;
      void this.post(peer, batch).finally(() => {
        queue.inFlight -= 1;
        this.pump(peer, queue);
      });
    }
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
    const answer = await this.postSigned(peer, base, raftPath, encodeMessages(batch));
    if (answer === null || this.closed) return;
    try {
      const answers = decodeAnswers(answer);
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
        const sent = await this.postSigned(peer, base, snapshotPath, JSON.stringify(chunk));
        if (sent === null) return;
      }
    } finally {
      this.snapshotting.delete(peer);
    }
  }

  /** The answer's body, or null when the peer refused or could not be reached. */
  private async postSigned(
    peer: string,
    base: string,
    path: string,
    body: string,
  ): Promise<string | null> {
    const headers = signPeerRequest(
      this.options.key,
      this.options.nodeId,
      { method: "POST", path, body },
      this.options.clock.now(),
    );
    try {
      const answer = await postJson(`${base}${path}`, headers, body, limits.peerRequestTimeoutMs);
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
  }
}

function approximateSize(message: Message): number {
  if (message.type === "append")
    return 200 + message.entries.reduce((sum, e) => sum + e.data.byteLength * 1.4, 0);
  if (message.type === "snapshot") return 200 + (message.data?.byteLength ?? 0) * 1.4;
  return 200;
}
