// The TLS files of a data dir: `ca.pem` (the cluster CA, on every node), `ca.key` (its key, 0600,
// on every member: any member may lead, and the leader signs) and `node.pem` (this node's
// certificate and its key in one file, 0600, so that a renewal replaces both at once). Each is
// written whole or not at all.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { KeyedCertificate } from "./cluster-ca.ts";
import { writeDurably, writeSecret } from "./data-dir.ts";
import type { TlsIdentity } from "./tls-listener.ts";

export const tlsFiles = {
  ca: "ca.pem",
  caKey: "ca.key",
  node: "node.pem",
} as const;

const keyBlock = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/;

function read(dataDir: string, name: string): string | null {
  const path = join(dataDir, name);
  return existsSync(path) ? readFileSync(path, "utf8") : null;
}

/** This node's certificate, key and CA, when it has all three. */
export function readTlsIdentity(dataDir: string): TlsIdentity | null {
  const caPem = read(dataDir, tlsFiles.ca);
  const both = read(dataDir, tlsFiles.node);
  const keyPem = both?.match(keyBlock)?.[0];
  if (!caPem || !both || !keyPem) return null;
  return { caPem, certPem: both.replace(keyBlock, ""), keyPem };
}

export function readCaPem(dataDir: string): string | null {
  return read(dataDir, tlsFiles.ca);
}

/** The CA with its key, on a member that has it. */
export function readCa(dataDir: string): KeyedCertificate | null {
  const certPem = read(dataDir, tlsFiles.ca);
  const keyPem = read(dataDir, tlsFiles.caKey);
  return certPem && keyPem ? { certPem, keyPem } : null;
}

export function writeCa(dataDir: string, ca: { certPem: string; keyPem?: string }): void {
  if (ca.keyPem) writeSecret(join(dataDir, tlsFiles.caKey), ca.keyPem);
  writeDurably(join(dataDir, tlsFiles.ca), ca.certPem);
}

export function writeNodeCertificate(dataDir: string, identity: TlsIdentity): void {
  writeDurably(join(dataDir, tlsFiles.ca), identity.caPem);
  writeDurably(
    join(dataDir, tlsFiles.node),
    `${identity.certPem.trim()}\n${identity.keyPem}`,
    0o600,
  );
}
