// The join token on disk and its proof. The token is kept at `<data dir>/join.token` (mode
// 0600); the secret itself never travels: a joiner sends a MAC made with it
// (cluster/join-token.ts says what a token is).
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type JoinToken, parseJoinToken } from "../cluster/join-token.ts";

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
