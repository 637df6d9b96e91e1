// The join token: the cluster's id, its CA's digest and a secret in one line a person copies to
// another machine. The digest lets a joiner trust the cluster's CA before it says anything; the
// secret proves to the cluster that the joiner may have a certificate.
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

/** Which token a node starts with, from the one kept in its data dir and the one given. */
export type TokenChoice =
  | { kind: "known"; token: JoinToken }
  /** The token given after a rotation: the one to prove from now on, kept in place of the old. */
  | { kind: "given-anew"; token: JoinToken }
  /** Neither: a new cluster (once no cluster answers on the LAN). */
  | { kind: "new-cluster" };

export function chooseToken(kept: JoinToken | null, given: JoinToken | null): TokenChoice {
  if (kept && given && kept.clusterId !== given.clusterId) {
    throw new ShoalError(
      "E_CONFLICT",
      `this data dir belongs to cluster ${kept.clusterId}, the token to ${given.clusterId}`,
    );
  }
  if (kept && given && kept.caDigest === given.caDigest && kept.secret !== given.secret) {
    return { kind: "given-anew", token: given };
  }
  const known = kept ?? given;
  return known ? { kind: "known", token: known } : { kind: "new-cluster" };
}
