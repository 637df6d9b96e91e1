// POSTs between peers over node:https with keep-alive connections (an agent per member, from
// peer-tls.ts). Raft traffic is many small requests between the same few hosts: node:http costs
// about a third of what fetch does per request on loopback (0.5 ms against 1.4 ms measured here),
// and every hop of a commit pays it.
import http from "node:http";
import https from "node:https";
import { limits } from "../core/limits.ts";

export interface PostAnswer {
  status: number;
  text: string;
}

/** POSTs `body` to `url` through `agent`; rejects on a network error or after `timeoutMs`. */
export function postJson(
  url: string,
  agent: http.Agent,
  body: string,
  timeoutMs: number,
  extraHeaders: Readonly<Record<string, string>> = {},
): Promise<PostAnswer> {
  // Plain HTTP only in the benchmark that measures what TLS costs (plain-wire.ts).
  const client = url.startsWith("http:") ? http : https;
  return new Promise((resolve, reject) => {
    const request = client.request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          ...extraHeaders,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > limits.peerBodyBytesMax) {
            response.destroy(new Error("the peer's answer is too large"));
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
        );
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}
