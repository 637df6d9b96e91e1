// Signed JSON calls to a peer's /internal/:kind routes (joins, forwarded proposals).

import { signPeerRequest } from "../api/peer-auth.ts";
import type { Clock } from "../core/clock.ts";
import { type ErrorCode, errorCodes, ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { type PostAnswer, postJson } from "./http-post.ts";

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
    let response: PostAnswer;
    try {
      response = await postJson(`${base}${path}`, headers, body, timeoutMs);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new ShoalError("E_NOT_READY", `peer ${base} does not answer (${reason})`, {
        cause: error,
      });
    }
    let answer: { error?: { code: string; message: string } };
    try {
      answer = JSON.parse(response.text) as typeof answer;
    } catch (error) {
      throw new ShoalError("E_NOT_READY", `peer ${base} answered ${response.status}, not JSON`, {
        cause: error,
      });
    }
    if (response.status !== 200) {
      const given = answer.error?.code ?? "";
      const code = given in errorCodes ? (given as ErrorCode) : "E_NOT_READY";
      throw new ShoalError(code, `peer ${base}: ${answer.error?.message ?? response.status}`);
    }
    return answer as T;
  }
}
