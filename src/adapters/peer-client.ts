// Signed JSON calls to a peer's /internal/:kind routes (joins, forwarded proposals).

import { signPeerRequest } from "../api/peer-auth.ts";
import type { Clock } from "../core/clock.ts";
import { type ErrorCode, errorCodes, ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";

export class PeerClient {
  constructor(
    private readonly nodeId: string,
    private readonly key: Buffer,
    private readonly clock: Clock,
  ) {}

  async call<T>(
    base: string,
    kind: string,
    payload: unknown,
    timeoutMs: number = limits.peerRequestTimeoutMs,
  ): Promise<T> {
    const path = `/internal/${kind}`;
    const body = JSON.stringify(payload);
    const headers = signPeerRequest(
      this.key,
      this.nodeId,
      { method: "POST", path, body },
      this.clock.now(),
    );
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new ShoalError("E_NOT_READY", `peer ${base} does not answer`, { cause: error });
    }
    const answer = (await response.json()) as { error?: { code: string; message: string } };
    if (!response.ok) {
      const given = answer.error?.code ?? "";
      const code = given in errorCodes ? (given as ErrorCode) : "E_NOT_READY";
      throw new ShoalError(code, `peer ${base}: ${answer.error?.message ?? response.status}`);
    }
    return answer as T;
  }
}
