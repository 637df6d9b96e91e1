// The join token: the cluster's id, its CA's digest and a secret in one line a person copies to
// another machine. The digest lets a joiner trust the cluster's CA before it says anything; the
// secret proves to the cluster that the joiner may have a certificate. The secret itself never
// travels (a joiner sends a MAC made with it), and the token is kept at `<data dir>/join.token`
// (mode 0600).
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ShoalError } from "../core/errors.ts";

const prefix = "shoal2";
/** Tokens of shoal before TLS: refused with the way to re-form the fleet. */
const plainPrefix = "shoal1";

export interface JoinToken {
  clusterId: string;
  /** The SHA-256 of the cluster CA's certificate (hex): a joiner trusts only that CA. */
  caDigest: string;
  secret: string;
  text: string;
}

export function formatJoinToken(clusterId: string, caDigest: string, secret: string): JoinToken {
  return { clusterId, caDigest, secret, text: `${prefix}.${clusterId}.${caDigest}.${secret}` };
}

/** The message for a token of a fleet formed before shoal spoke TLS. */
export const plainTokenMessage =
  "this is a join token of a shoal fleet from before TLS (shoal1.…): such a fleet cannot be " +
  "joined by this version; re-form it (README, “Upgrading from shoal1”)";

export function parseJoinToken(text: string): JoinToken {
  const [tag, clusterId, caDigest, secret, ...rest] = text.trim().split(".");
  if (tag === plainPrefix) throw new ShoalError("E_VALIDATION", plainTokenMessage);
  if (
    tag !== prefix ||
    !clusterId ||
    !caDigest ||
    !secret ||
    rest.length > 0 ||
    !/^[0-9a-z]+$/.test(clusterId) ||
    !/^[0-9a-f]{64}$/.test(caDigest) ||
    !/^[A-Za-z0-9_-]+$/.test(secret)
  ) {
    throw new ShoalError(
      "E_VALIDATION",
      "not a shoal join token (it looks like shoal2.<cluster>.<ca-sha256>.<secret>)",
    );
  }
  return { clusterId, caDigest, secret, text: text.trim() };
}

export function joinTokenPath(dataDir: string): string {
  return join(dataDir, "join.token");
}

export function readJoinToken(dataDir: string): JoinToken | null {
  const path = joinTokenPath(dataDir);
  return existsSync(path) ? parseJoinToken(readFileSync(path, "utf8")) : null;
}

function proofKey(secret: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, "shoal", "shoal join v2", 32));
}

/**
 * What a joiner sends instead of the secret: a MAC over its node id and certificate request, so a
 * proof is good for that request only, and a member that logs or forwards it gives nothing away.
 */
export function joinProof(secret: string, nodeId: string, csrPem: string): string {
  return createHmac("sha256", proofKey(secret)).update(`${nodeId}\n${csrPem}`).digest("hex");
}

export function proofMatches(
  secret: string,
  nodeId: string,
  csrPem: string,
  given: string,
): boolean {
  const expected = Buffer.from(joinProof(secret, nodeId, csrPem), "hex");
  const actual = Buffer.from(/^[0-9a-f]{64}$/.test(given) ? given : "", "hex");
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
