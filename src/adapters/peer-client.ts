// JSON calls to a member's /internal/:kind routes (forwarded joins, proposals and reads) over
// mutual TLS: the answer comes from the member named and has its kind's shape (peer-protocol.ts),
// or the call fails.

import { type ErrorCode, errorCodes, ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { type PostAnswer, postJson } from "./http-post.ts";
import { isPeerKind, peerAnswers } from "./peer-protocol.ts";
import type { PeerWire } from "./peer-wire.ts";

export class PeerClient {
  constructor(private readonly wire: PeerWire) {}

  async call<T>(
    memberId: string,
    base: string,
    kind: string,
    payload: unknown,
    timeoutMs: number = limits.peerRequestTimeoutMs,
  ): Promise<T> {
    if (!isPeerKind(kind)) throw new ShoalError("E_INTERNAL", `no peer kind ${kind}`);
    const path = `/internal/${kind}`;
    const body = JSON.stringify(payload);
    let response: PostAnswer;
    try {
      const agent = this.wire.agentFor(memberId);
      response = await postJson(`${base}${path}`, agent, body, timeoutMs, this.wire.headers);
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
    const checked = peerAnswers[kind].safeParse(answer);
    if (!checked.success) {
      throw new ShoalError(
        "E_NOT_READY",
        `peer ${memberId} answered ${kind} with a malformed answer: ${checked.error.issues[0]?.message ?? ""}`,
      );
    }
    return checked.data as T;
  }
}
