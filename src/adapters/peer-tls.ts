// The client side of mutual TLS between members: this node's certificate, the CA it trusts, and
// one keep-alive agent per member that accepts only that member's certificate. An answer read
// from such a connection comes from that member: a machine on the path can neither read it nor
// write one.
import type http from "node:http";
import https from "node:https";
import type { ConnectionOptions, PeerCertificate } from "node:tls";
import { limits } from "../core/limits.ts";
import { nodeIdOfNames } from "../core/node-names.ts";
import type { PeerWire } from "./peer-wire.ts";
import type { TlsIdentity } from "./tls-listener.ts";

/** The refusal of a server whose certificate names another node than the one asked for. */
function expectNode(memberId: string) {
  return (_host: string, certificate: PeerCertificate): Error | undefined => {
    const named = nodeIdOfNames(certificate.subjectaltname);
    if (named === memberId) return undefined;
    return new Error(`the peer's certificate names ${named ?? "no node"}, not ${memberId}`);
  };
}

/** The TLS options of a connection to `memberId` (a peer stream opens its own connection). */
export function memberTlsOptions(identity: TlsIdentity, memberId: string): ConnectionOptions {
  return {
    cert: identity.certPem,
    key: identity.keyPem,
    ca: [identity.caPem],
    checkServerIdentity: expectNode(memberId),
  };
}

export class PeerTls implements PeerWire {
  readonly scheme = "https";
  readonly headers = {};
  private current: TlsIdentity;
  private readonly agents = new Map<string, https.Agent>();

  constructor(identity: TlsIdentity) {
    this.current = identity;
  }

  get identity(): TlsIdentity {
    return this.current;
  }

  /** A renewed certificate: connections made from now on show it. */
  setIdentity(identity: TlsIdentity): void {
    this.current = identity;
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /** The agent for requests to `memberId`, made on first use and kept. */
  agentFor(memberId: string): https.Agent {
    let agent = this.agents.get(memberId);
    if (!agent) {
      if (this.agents.size >= limits.peerAddressCacheMax) this.closeAll();
      agent = new https.Agent({
        ...memberTlsOptions(this.current, memberId),
        keepAlive: true,
        // An idle socket is dropped before the member's listener ends it (limits.ts).
        timeout: limits.peerIdleSocketMs,
        // Pipelined appends, forwarded writes and reads to one peer share these sockets.
        maxSockets: limits.peerSocketsMax,
        maxFreeSockets: limits.peerSocketsMax,
      });
      this.agents.set(memberId, agent);
    }
    return agent;
  }

  request(url: string, memberId: string, options: http.RequestOptions): http.ClientRequest {
    return https.request(url, { ...options, ...memberTlsOptions(this.current, memberId) });
  }

  /** Ends the connections to a member that left. */
  forget(memberId: string): void {
    this.agents.get(memberId)?.destroy();
    this.agents.delete(memberId);
  }

  closeAll(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}
