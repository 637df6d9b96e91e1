// Joining a cluster with a token: ask every member found (`--join` addresses, then members of the
// token's cluster seen over mDNS) in turn, round after round, until one admits this node. The
// joiner pins the CA by the token's digest before it sends anything (the JoinClient port does
// it), and keeps what admission gave.
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { Logger } from "../core/logger.ts";
import type { Timers } from "../core/timers.ts";
import type { JoinAnswer, JoinRequest } from "./admission.ts";
import type { JoinToken } from "./join-token.ts";

/** Where a node looks for members of a cluster besides `--join`: mDNS, or nothing. */
export interface PeerFinder {
  /** Members seen recently; without a cluster id, members of any cluster. */
  peers(clusterId?: string): { nodeId: string; clusterId: string; address: string; port: number }[];
}

/** The joiner's side of the join protocol, before it has a certificate. */
export interface JoinClient {
  /** The CA a member at `address` serves, refused unless its digest is the token's. */
  fetchPinnedCa(address: string, token: JoinToken): Promise<string>;
  /** Sends the request over TLS verified against `caPem`; the member's answer. */
  requestAdmission(address: string, caPem: string, body: JoinRequest): Promise<JoinAnswer>;
}

export interface JoiningOptions {
  token: JoinToken;
  /** `--join` addresses (`host:port`). */
  join: readonly string[];
  finder: PeerFinder | null;
  client: JoinClient;
  /** The request, made once per start: a new key and the proof bound to it. */
  request: JoinRequest;
  /** Keeps what admission gave (through `address`) before the node serves its certificate. */
  keep(address: string, caPem: string, answer: JoinAnswer): void;
  timers: Timers;
  logger: Logger;
}

/** Where to ask: the `--join` addresses, then members of the token's cluster seen over mDNS. */
export function candidates(options: Pick<JoiningOptions, "join" | "finder" | "token">): string[] {
  const found = options.finder?.peers(options.token.clusterId) ?? [];
  const addresses = [...options.join, ...found.map((peer) => `${peer.address}:${peer.port}`)];
  return [...new Set(addresses)];
}

/**
 * Asks every candidate in turn until one admits this node. A refusal is final only when every
 * member reached refused: the CA is not the one the token pins, or the cluster does not take the
 * token's secret.
 */
export async function joinUntilAdmitted(
  options: JoiningOptions,
  signal: AbortSignal,
): Promise<void> {
  const { token, client } = options;
  for (let round = 0; !signal.aborted; round++) {
    const addresses = candidates(options);
    const errors: ShoalError[] = [];
    for (const address of addresses) {
      try {
        const caPem = await client.fetchPinnedCa(address, token);
        const answer = await client.requestAdmission(address, caPem, options.request);
        options.keep(address, caPem, answer);
        options.logger.info({ through: address }, "joined the cluster");
        return;
      } catch (error) {
        errors.push(error instanceof ShoalError ? error : new ShoalError("E_INTERNAL", `${error}`));
      }
    }
    if (errors.length > 0 && errors.every((error) => error.code === "E_UNAUTHORIZED")) {
      throw new ShoalError(
        "E_UNAUTHORIZED",
        `cluster ${token.clusterId} refused this node's token: ${errors[0]?.message}`,
      );
    }
    if (round > 0 && round % limits.joinLogEveryRounds === 0)
      logStillJoining(options, addresses, errors);
    await sleep(options.timers, limits.joinRetryMs, signal);
  }
  throw new ShoalError("E_NOT_READY", "the node stopped before it joined");
}

function logStillJoining(options: JoiningOptions, asked: string[], errors: ShoalError[]): void {
  options.logger.warn(
    { cluster: options.token.clusterId, asked, errors: errors.map((e) => e.message) },
    asked.length === 0
      ? "no member of the cluster found yet (mDNS, --join); still looking"
      : "no member admitted this node yet; asking again",
  );
}

function sleep(timers: Timers, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const cancel = timers.after(ms, resolve);
    signal.addEventListener(
      "abort",
      () => {
        cancel();
        resolve();
      },
      { once: true },
    );
  });
}
