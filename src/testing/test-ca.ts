// Certificates for tests: a cluster CA and node identities signed by it, made with the real CA
// code (cluster-ca.ts).

import type http from "node:http";
import type { AddressInfo } from "node:net";
import {
  createClusterCa,
  createNodeRequest,
  type KeyedCertificate,
  signNodeCertificate,
} from "../adapters/cluster-ca.ts";
import { type TlsIdentity, TlsListener } from "../adapters/tls-listener.ts";

export class TestCa {
  private constructor(readonly ca: KeyedCertificate) {}

  static async create(clusterId = "testcluster"): Promise<TestCa> {
    return new TestCa(await createClusterCa(clusterId, Date.now()));
  }

  get caPem(): string {
    return this.ca.certPem;
  }

  /** `server` behind a TLS listener on loopback, serving a certificate of this CA for `nodeId`. */
  async serve(
    server: http.Server,
    nodeId: string,
  ): Promise<{ base: string; listener: TlsListener }> {
    const listener = new TlsListener(server, {
      identity: await this.identity(nodeId),
      isRevoked: () => false,
    });
    await listener.listen(0, "127.0.0.1");
    const { port } = listener.server.address() as AddressInfo;
    return { base: `https://127.0.0.1:${port}`, listener };
  }

  /** A node's identity: its own key, and a certificate of this CA naming `nodeId`. */
  async identity(
    nodeId: string,
    options: { nowMs?: number; lifetimeMs?: number } = {},
  ): Promise<TlsIdentity> {
    const { keyPem, csrPem } = await createNodeRequest(nodeId);
    const signed = await signNodeCertificate({
      ca: this.ca,
      csrPem,
      nodeId,
      names: ["127.0.0.1", "localhost"],
      nowMs: options.nowMs ?? Date.now(),
      lifetimeMs: options.lifetimeMs,
    });
    if (!signed.ok) throw new Error(signed.message);
    return { certPem: signed.value, keyPem, caPem: this.ca.certPem };
  }
}
