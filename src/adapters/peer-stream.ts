// Raft messages to one peer over one long-lived connection: an HTTP upgrade on the API's port,
// over mutual TLS, opens it; then both ends exchange frames (peer-frames.ts). A request per batch
// cost about 0.5 ms of CPU on the two ends together, several times per write; a frame costs a few
// microseconds. The accepting end answers every frame with one frame (the member's answers,
// often none), so the connecting end knows a silent peer from a busy one. Each end knows the other
// by its certificate: the connecting end accepts only the member it dialled, the accepting end
// takes the sender's id from the client certificate (tls-listener.ts).
import type http from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { limits } from "../core/limits.ts";
import { FrameDecoder, FrameEncoder, FrameError } from "./peer-frames.ts";
import type { PeerWire } from "./peer-wire.ts";
import { headersArrived, peerOf } from "./tls-listener.ts";

export const peerStreamPath = "/internal/raft-stream";
export const peerStreamProtocol = "shoal-raft/1";

export interface PeerStreamOptions {
  /** The member this stream goes to: a server whose certificate names another is refused. */
  readonly peerId: string;
  /** This node's certificate and the CA it trusts, or the benchmark's plain HTTP. */
  readonly wire: PeerWire;
  /** The answer frames' payloads (encoded Raft messages), in order. */
  readonly onAnswer: (payload: string) => void;
  /** The peer refused the upgrade (an older shoal): the caller falls back to requests. */
  readonly onRefused: () => void;
  readonly onError?: (error: unknown) => void;
  /** How long sent frames may go unanswered (default: limits.peerStreamSilenceMs). */
  readonly silenceMs?: number;
}

type State = "connecting" | "open" | "closed";

/** The connecting end: frames out, answers back. Once closed it stays closed (make a new one). */
export class PeerStream {
  private state: State = "connecting";
  private socket: Duplex | null = null;
  private encoder: FrameEncoder | null = null;
  private decoder: FrameDecoder | null = null;
  /** Payloads given while connecting, sent once open. */
  private waiting: string[] = [];
  /** Frames sent and not yet answered, and when a frame last came back. */
  private unanswered = 0;
  private heardAt: number;
  private request: http.ClientRequest | null = null;
  private cancelConnectDeadline: (() => void) | null = null;

  constructor(
    base: string,
    private readonly options: PeerStreamOptions,
  ) {
    this.heardAt = performance.now();
    this.connect(base);
  }

  get closed(): boolean {
    return this.state === "closed";
  }

  /** Queues or writes one frame; false when it was dropped (the stream is full or closed). */
  send(payload: string): boolean {
    if (this.state === "closed") return false;
    if (this.silentTooLong()) {
      this.close(new Error("the peer stream went silent"));
      return false;
    }
    if (this.state === "connecting") {
      if (this.waiting.length >= limits.peerStreamWaitingMax) return false;
      this.waiting.push(payload);
      return true;
    }
    return this.write(payload);
  }

  close(error?: unknown): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.waiting = [];
    this.cancelConnectDeadline?.();
    this.request?.destroy();
    this.socket?.destroy();
    if (error !== undefined) this.options.onError?.(error);
  }

  /** Frames went unanswered for longer than any flush should take: the path is dead. */
  private silentTooLong(): boolean {
    const silenceMs = this.options.silenceMs ?? limits.peerStreamSilenceMs;
    return this.unanswered > 0 && performance.now() - this.heardAt > silenceMs;
  }

  private write(payload: string): boolean {
    const { socket, encoder } = this;
    if (!socket || !encoder) return false;
    if (socket.writableLength > limits.peerStreamBufferBytesMax) return false;
    if (this.unanswered === 0) this.heardAt = performance.now();
    this.unanswered += 1;
    socket.write(encoder.encode(payload));
    return true;
  }

  private connect(base: string): void {
    const { peerId, wire } = this.options;
    const request = wire.request(`${base}${peerStreamPath}`, peerId, {
      method: "GET",
      agent: false,
      headers: { connection: "Upgrade", upgrade: peerStreamProtocol },
    });
    this.request = request;
    // Until the upgrade is answered whole, however slowly bytes trickle in.
    const deadline = setTimeout(
      () => this.close(new Error("the peer stream did not open in time")),
      limits.peerStreamConnectTimeoutMs,
    );
    this.cancelConnectDeadline = () => clearTimeout(deadline);
    request.on("upgrade", (response, socket, head) => {
      if (response.headers.upgrade !== peerStreamProtocol) {
        socket.destroy();
        this.refused();
        return;
      }
      this.opened(socket, head);
    });
    request.on("response", (response) => {
      response.resume();
      // 404 is an older shoal without streams; anything else (401, 503) is worth a retry.
      if (response.statusCode === 404) this.refused();
      else this.close(new Error(`the peer refused a stream: HTTP ${response.statusCode}`));
    });
    request.on("error", (error) => this.close(error));
    request.end();
  }

  private refused(): void {
    this.close();
    this.options.onRefused();
  }

  private opened(socket: Duplex, head: Buffer): void {
    if (this.state === "closed") {
      socket.destroy();
      return;
    }
    this.state = "open";
    this.cancelConnectDeadline?.();
    this.request = null;
    this.socket = socket;
    this.encoder = new FrameEncoder();
    this.decoder = new FrameDecoder(limits.peerBodyBytesMax);
    noDelay(socket);
    socket.on("data", (chunk: Buffer) => this.received(chunk));
    socket.on("error", (error) => this.close(error));
    socket.on("close", () => this.close());
    if (head.length > 0) this.received(head);
    const waiting = this.waiting;
    this.waiting = [];
    for (const payload of waiting) this.write(payload);
  }

  private received(chunk: Buffer): void {
    try {
      this.decoder?.push(chunk, (payload) => {
        this.unanswered = Math.max(0, this.unanswered - 1);
        this.heardAt = performance.now();
        this.options.onAnswer(payload);
      });
    } catch (error) {
      this.close(error);
    }
  }
}

function noDelay(socket: Duplex): void {
  if ("setNoDelay" in socket && typeof socket.setNoDelay === "function") socket.setNoDelay(true);
}

/** What the accepting end needs of the node: who may open a stream, and what answers a frame. */
export interface PeerStreamEndpoint {
  /** Whether `node` (named by its certificate) is one this member takes Raft messages from. */
  accepts(node: string): boolean;
  /** Answers one frame's payload from `node` with the payload of the answer frame. */
  answer(node: string, payload: string): Promise<string>;
}

/**
 * Accepts peer streams on the API's server. A stream opens only on a connection whose client
 * showed a valid, unrevoked certificate of the cluster's CA; nothing is read from any other.
 */
export function acceptPeerStreams(
  server: http.Server,
  endpoint: () => PeerStreamEndpoint | null,
): () => void {
  // One stream per peer: a peer that opens a new one (after a silence) is done with the old.
  const open = new Map<string, Duplex>();
  server.on("upgrade", (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    headersArrived(socket as net.Socket);
    const accepted = acceptedOrRefusal(request, endpoint(), open);
    if (typeof accepted === "string") {
      // Ended at once: an upgraded socket is past the server's own header and request timeouts.
      const refusal = `HTTP/1.1 ${accepted}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`;
      socket.end(refusal, () => socket.destroy());
      return;
    }
    open.get(accepted.node)?.destroy();
    open.set(accepted.node, socket);
    socket.on("close", () => {
      if (open.get(accepted.node) === socket) open.delete(accepted.node);
    });
    serveStream(socket, accepted, head);
  });
  // A closing server waits for its connections to end: its owner ends the streams first.
  return () => {
    for (const socket of open.values()) socket.destroy();
  };
}

interface Accepted {
  endpoint: PeerStreamEndpoint;
  node: string;
}

/** The stream to accept, or the status line of its refusal. */
function acceptedOrRefusal(
  request: http.IncomingMessage,
  endpoint: PeerStreamEndpoint | null,
  open: ReadonlyMap<string, Duplex>,
): Accepted | string {
  const url = new URL(request.url ?? "/", "https://peer");
  if (url.pathname !== peerStreamPath || request.method !== "GET") return "404 Not Found";
  const peer = peerOf(request.socket as net.Socket);
  if (!peer) return "401 Unauthorized";
  if (request.headers.upgrade !== peerStreamProtocol) return "400 Bad Request";
  if (!endpoint) return "503 Service Unavailable";
  if (!endpoint.accepts(peer.nodeId)) return "403 Forbidden";
  if (!open.has(peer.nodeId) && open.size >= limits.peerStreamsMax) {
    return "503 Service Unavailable";
  }
  return { endpoint, node: peer.nodeId };
}

function serveStream(socket: Duplex, accepted: Accepted, head: Buffer): void {
  const { endpoint, node } = accepted;
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${peerStreamProtocol}\r\n\r\n`,
  );
  noDelay(socket);
  if ("setTimeout" in socket && typeof socket.setTimeout === "function") {
    // The leader heartbeats every member several times a second: a quiet stream is dead.
    socket.setTimeout(limits.peerStreamIdleMs, () => socket.destroy());
  }
  const decoder = new FrameDecoder(limits.peerBodyBytesMax);
  const encoder = new FrameEncoder();
  // Each answer leaves as it settles; its place in the stream is the order it is written in.
  const answer = (payload: string) => {
    endpoint.answer(node, payload).then(
      (text) => {
        if (!socket.destroyed) socket.write(encoder.encode(text));
      },
      () => socket.destroy(),
    );
  };
  const received = (chunk: Buffer) => {
    try {
      decoder.push(chunk, answer);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      socket.destroy();
    }
  };
  socket.on("data", received);
  socket.on("error", () => socket.destroy());
  if (head.length > 0) received(head);
}
