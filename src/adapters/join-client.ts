// The joiner's side of joining, before it has a certificate: it fetches the CA a member serves,
// trusts it only when its digest is the one its token pins, and then, over TLS verified against
// that CA, sends its certificate request with a proof of the join secret. The secret itself never
// travels.
import http from "node:http";
import https from "node:https";
import { type JoinAnswer, type JoinRequest, joinAnswerSchema } from "../cluster/admission.ts";
import type { JoinToken } from "../cluster/join-token.ts";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import { anyNodeOfTheCa } from "../core/node-names.ts";
import { caDigest } from "./cluster-ca.ts";

export const joinPaths = { ca: "/join/ca", join: "/join" } as const;

interface Answer {
  status: number;
  text: string;
}

function request(
  url: string,
  options: https.RequestOptions,
  body: string | null,
  timeoutMs: number,
): Promise<Answer> {
  // Plain HTTP only in the benchmark that measures what TLS costs (plain-wire.ts).
  const client = url.startsWith("http:") ? http : https;
  return new Promise((resolve, reject) => {
    const call = client.request(
      url,
      {
        ...options,
        method: body === null ? "GET" : "POST",
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
        headers: body === null ? {} : { "content-type": "application/json" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > limits.joinAnswerBytesMax) response.destroy(new Error("answer too large"));
          else chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
        );
        response.on("error", reject);
      },
    );
    call.on("error", reject);
    call.end(body ?? undefined);
  });
}

/** Refuses a CA whose digest the token does not pin; the message says what was found. */
function checkPinnedCa(token: JoinToken, address: string, caPem: string): void {
  let found: string;
  try {
    found = caDigest(caPem);
  } catch {
    throw new ShoalError("E_UNAUTHORIZED", `${address} served no CA certificate`);
  }
  if (found !== token.caDigest) {
    throw new ShoalError(
      "E_UNAUTHORIZED",
      `${address} serves a CA whose SHA-256 is ${found.slice(0, 16)}…, but the token pins ` +
        `${token.caDigest.slice(0, 16)}…: it is not the cluster this token belongs to (or someone ` +
        "is in between); refusing to join",
    );
  }
}

/** The CA a member at `address` serves, checked against the token's pin. */
export async function fetchPinnedCa(
  address: string,
  token: JoinToken,
  scheme: "https" | "http" = "https",
): Promise<string> {
  // Unverified on purpose: nothing secret is sent, and the pin decides what is trusted.
  const answer = await request(
    `${scheme}://${address}${joinPaths.ca}`,
    { rejectUnauthorized: false },
    null,
    limits.peerRequestTimeoutMs,
  );
  if (answer.status !== 200) {
    throw new ShoalError("E_NOT_READY", `${address} answered ${answer.status} for its CA`);
  }
  checkPinnedCa(token, address, answer.text);
  return answer.text;
}

/** Sends the request over TLS verified against the pinned CA; the member answers or refuses. */
export async function requestAdmission(
  address: string,
  caPem: string,
  body: JoinRequest,
  scheme: "https" | "http" = "https",
): Promise<JoinAnswer> {
  const answer = await request(
    `${scheme}://${address}${joinPaths.join}`,
    { ca: [caPem], checkServerIdentity: anyNodeOfTheCa },
    JSON.stringify(body),
    limits.peerRequestTimeoutMs,
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.text);
  } catch {
    throw new ShoalError("E_NOT_READY", `${address} answered ${answer.status}, not JSON`);
  }
  if (answer.status !== 200) {
    const error = (parsed as { error?: { code?: string; message?: string } }).error;
    const code = error?.code === "E_UNAUTHORIZED" ? "E_UNAUTHORIZED" : "E_NOT_READY";
    throw new ShoalError(code, `${address}: ${error?.message ?? answer.status}`);
  }
  const checked = joinAnswerSchema.safeParse(parsed);
  if (!checked.success)
    throw new ShoalError("E_NOT_READY", `${address} answered a bad join answer`);
  return checked.data;
}
