// What a member's calls to other members go over. Always mutual TLS (peer-tls.ts), except in one
// benchmark: `npm run bench` measures what TLS costs the store by restarting a fleet over plain
// HTTP in turn (plain-wire.ts). Callers build URLs with `scheme` and send `headers` with every
// request.
import type http from "node:http";
import type { TlsIdentity } from "./tls-listener.ts";

export interface PeerWire {
  readonly scheme: "https" | "http";
  /** Sent with every request to a member (plain HTTP names its sender in one). */
  readonly headers: Readonly<Record<string, string>>;
  readonly identity: TlsIdentity;
  /** The keep-alive agent for requests to `memberId`. */
  agentFor(memberId: string): http.Agent;
  /** A request on a connection of its own (a peer stream's upgrade), to `memberId` only. */
  request(url: string, memberId: string, options: http.RequestOptions): http.ClientRequest;
  /** A renewed certificate: connections made from now on show it. */
  setIdentity(identity: TlsIdentity): void;
  /** Ends the connections to a member that left. */
  forget(memberId: string): void;
  closeAll(): void;
}
