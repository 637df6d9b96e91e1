// The API's port under TLS. A TLS server takes each connection first: it caps connections per
// client address, ends handshakes that take too long, and reads the client's certificate (which is
// optional: the CLI, a browser and a joiner have none). Only then is the connection handed to the
// HTTP server, which learns who is on the other end from `peerOf(socket)`, never from a header.
// (The HTTP server is plain node:http fed TLS sockets: under Bun, node:https does not expose the
// client's certificate, while tls.createServer does.)
import type http from "node:http";
import type net from "node:net";
import tls from "node:tls";
import { limits } from "../core/limits.ts";
import { nodeIdOfNames } from "../core/node-names.ts";
import { keyDigest } from "./cluster-ca.ts";

/** A node's certificate and key, and the CA whose certificates it trusts (all PEM). */
export interface TlsIdentity {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** Who a connection's client certificate says is on the other end. */
export interface PeerOfSocket {
  nodeId: string;
  serial: string;
  /** SHA-256 of the certificate's public key (see cluster-ca.ts keyDigest). */
  keyDigest: string;
}

/** Why a client certificate was not taken; `clock` when the failure is one of time. */
export interface RefusedCertificate {
  reason: string;
  clock: boolean;
}

export interface TlsListenerOptions {
  identity: TlsIdentity;
  /**
   * Whether a valid certificate of the CA is refused all the same: its node left, its key is not
   * the one pinned for that node, or the node is unknown to a replica that knows itself.
   */
  isRevoked: (peer: PeerOfSocket) => boolean;
  onRefused?: (address: string, refusal: RefusedCertificate) => void;
  connectionsPerClientMax?: number;
  handshakeTimeoutMs?: number;
  /**
   * From the handshake, and from each answer's end, to the next request's headers (default:
   * limits.httpHeadersTimeoutMs); an idle keep-alive connection is ended then too.
   */
  headersTimeoutMs?: number;
  /** From a request's headers to the end of its body (default: limits.httpRequestTimeoutMs). */
  requestTimeoutMs?: number;
}

const timeErrors = new Set(["CERT_NOT_YET_VALID", "CERT_HAS_EXPIRED"]);
const peers = new WeakMap<net.Socket, PeerOfSocket>();
/** Connections whose first request's headers have not arrived yet, with their deadline. */
const headerDeadlines = new WeakMap<net.Socket, NodeJS.Timeout>();

/**
 * A request's headers arrived (an upgrade's handler says so itself). Node's own header and request
 * timeouts do not watch connections handed to a server that never listened, and Bun has none: the
 * listener keeps deadlines of its own.
 */
export function headersArrived(socket: net.Socket | undefined): void {
  if (!socket) return;
  clearTimeout(headerDeadlines.get(socket));
  headerDeadlines.delete(socket);
}

/** Ends `socket` unless its deadline is cleared within `ms`; one deadline per socket at a time. */
function arm(socket: net.Socket, ms: number): NodeJS.Timeout {
  clearTimeout(headerDeadlines.get(socket));
  const timer = setTimeout(() => socket.destroy(), ms);
  headerDeadlines.set(socket, timer);
  return timer;
}

/** The node whose valid, unrevoked certificate this connection showed; null for other clients. */
export function peerOf(socket: net.Socket | undefined): PeerOfSocket | null {
  return socket ? (peers.get(socket) ?? null) : null;
}

/** Resolves once `server` listens on `host:port`; rejects on the error that stopped it. */
export function listenOn(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Names the node on the other end of a connection without TLS: only the benchmark's plain
 * listener (plain-wire.ts) calls it.
 */
export function markPeer(socket: net.Socket, peer: PeerOfSocket): void {
  // A TLS connection's peer is its certificate's, never what a request says.
  if (socket instanceof tls.TLSSocket) throw new Error("markPeer on a TLS connection");
  peers.set(socket, peer);
}

function secureContextOf(identity: TlsIdentity): tls.SecureContextOptions {
  return { cert: identity.certPem, key: identity.keyPem, ca: [identity.caPem] };
}

export class TlsListener {
  readonly server: tls.Server;
  private readonly perClient = new Map<string, number>();
  private readonly byNode = new Map<string, Set<tls.TLSSocket>>();
  private readonly open = new Set<tls.TLSSocket>();

  constructor(
    private readonly http: http.Server,
    private readonly options: TlsListenerOptions,
  ) {
    this.server = tls.createServer({
      ...secureContextOf(options.identity),
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? limits.tlsHandshakeTimeoutMs,
      ALPNProtocols: ["http/1.1"],
    });
    this.server.on("connection", (socket: net.Socket) => this.admitted(socket));
    this.server.on("secureConnection", (socket: tls.TLSSocket) => this.secured(socket));
    http.on("request", (request: http.IncomingMessage, response: http.ServerResponse) =>
      this.deadlines(request, response),
    );
    // A failed handshake (a scanner, a client that does not trust us) is its client's problem.
    this.server.on("tlsClientError", (_error, socket) => socket.destroy());
  }

  /** Serves a new certificate (a joiner's first, a renewal) to connections from now on. */
  setIdentity(identity: TlsIdentity): void {
    this.server.setSecureContext(secureContextOf(identity));
  }

  /** Ends every open connection of `nodeId` at once (its certificate was revoked). */
  closeNode(nodeId: string): void {
    for (const socket of this.byNode.get(nodeId) ?? []) socket.destroy();
    this.byNode.delete(nodeId);
  }

  listen(port: number, host: string): Promise<void> {
    return listenOn(this.server, port, host);
  }

  /** Stops taking connections; those still open after `graceMs` are ended. */
  close(graceMs = 0): Promise<void> {
    for (const sockets of this.byNode.values()) for (const socket of sockets) socket.destroy();
    const force = setTimeout(() => {
      for (const socket of this.open) socket.destroy();
    }, graceMs);
    return new Promise((resolve) =>
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      }),
    );
  }

  /** A body must arrive in time, and so must the next request once this one is answered. */
  private deadlines(request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    const body = arm(socket, this.options.requestTimeoutMs ?? limits.httpRequestTimeoutMs);
    // Only the body's own deadline: an unread body may end after the answer armed the next one.
    request.once("end", () => {
      if (headerDeadlines.get(socket) === body) headersArrived(socket);
    });
    response.once("finish", () => {
      if (!socket.destroyed)
        arm(socket, this.options.headersTimeoutMs ?? limits.httpHeadersTimeoutMs);
    });
  }

  /** Counts the TCP connection against its client address; over the cap it is ended unread. */
  private admitted(socket: net.Socket): void {
    const address = socket.remoteAddress ?? "";
    const count = (this.perClient.get(address) ?? 0) + 1;
    const max = this.options.connectionsPerClientMax ?? limits.connectionsPerClientMax;
    if (count > max) {
      socket.destroy();
      return;
    }
    this.perClient.set(address, count);
    socket.once("close", () => {
      const left = (this.perClient.get(address) ?? 1) - 1;
      if (left <= 0) this.perClient.delete(address);
      else this.perClient.set(address, left);
    });
  }

  private secured(socket: tls.TLSSocket): void {
    const peer = this.identify(socket);
    if (peer === "revoked") {
      socket.destroy();
      return;
    }
    arm(socket, this.options.headersTimeoutMs ?? limits.httpHeadersTimeoutMs);
    this.open.add(socket);
    socket.once("close", () => {
      headersArrived(socket);
      this.open.delete(socket);
    });
    if (peer) {
      peers.set(socket, peer);
      let sockets = this.byNode.get(peer.nodeId);
      if (!sockets) {
        sockets = new Set();
        this.byNode.set(peer.nodeId, sockets);
      }
      sockets.add(socket);
      socket.once("close", () => this.forget(peer.nodeId, socket));
    }
    this.http.emit("connection", socket);
  }

  private forget(nodeId: string, socket: tls.TLSSocket): void {
    const sockets = this.byNode.get(nodeId);
    sockets?.delete(socket);
    if (sockets?.size === 0) this.byNode.delete(nodeId);
  }

  /**
   * The client's node, when it showed a certificate of this CA that is neither expired nor
   * revoked; "revoked" ends the connection before a byte of HTTP is read.
   */
  private identify(socket: tls.TLSSocket): PeerOfSocket | "revoked" | null {
    const certificate = socket.getPeerCertificate();
    if (!certificate || Object.keys(certificate).length === 0) return null;
    const address = socket.remoteAddress ?? "";
    if (!socket.authorized) {
      const code = String(socket.authorizationError ?? "");
      this.options.onRefused?.(address, { reason: code, clock: timeErrors.has(code) });
      return null;
    }
    const nodeId = nodeIdOfNames(certificate.subjectaltname);
    if (!nodeId) return null;
    const peer = {
      nodeId,
      serial: certificate.serialNumber.toLowerCase(),
      keyDigest: keyDigest(certificate.raw),
    };
    if (this.options.isRevoked(peer)) {
      this.options.onRefused?.(address, { reason: "revoked", clock: false });
      return "revoked";
    }
    return peer;
  }
}
