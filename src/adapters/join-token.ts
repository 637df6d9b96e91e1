// The join token: the cluster's id and a secret in one line a person copies to another machine.
// Knowing it is the proof a node belongs to the cluster: peer requests are signed with a key
// derived from it. It never travels and is kept at `<data dir>/join.token` (mode 0600).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ShoalError } from "../core/errors.ts";

const prefix = "shoal1";

export interface JoinToken {
  clusterId: string;
  secret: string;
  text: string;
}

export function formatJoinToken(clusterId: string, secret: string): JoinToken {
  return { clusterId, secret, text: `${prefix}.${clusterId}.${secret}` };
}

export function parseJoinToken(text: string): JoinToken {
  const [tag, clusterId, secret, ...rest] = text.trim().split(".");
  if (
    tag !== prefix ||
    !clusterId ||
    !secret ||
    rest.length > 0 ||
    !/^[0-9a-z]+$/.test(clusterId)
  ) {
    throw new ShoalError(
      "E_VALIDATION",
      "not a shoal join token (it looks like shoal1.<cluster>.<secret>)",
    );
  }
  return { clusterId, secret, text: text.trim() };
}

export function joinTokenPath(dataDir: string): string {
  return join(dataDir, "join.token");
}

export function readJoinToken(dataDir: string): JoinToken | null {
  const path = joinTokenPath(dataDir);
  return existsSync(path) ? parseJoinToken(readFileSync(path, "utf8")) : null;
}
