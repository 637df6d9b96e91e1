// The CLI's fetch: HTTPS over node:https, trusting only the cluster's CA (the global fetch cannot
// be given a CA of its own). Any member of the cluster may answer: the server's certificate must
// be of that CA and name a shoal node; its host name does not matter (addresses move, and a Pi is
// often reached by an address no certificate lists).
import https from "node:https";
import { Readable } from "node:stream";
import { ShoalError } from "../core/errors.ts";
import { anyNodeOfTheCa } from "../core/node-names.ts";
import type { Fetch } from "./client.ts";

function headersOf(init: RequestInit | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  new Headers(init?.headers).forEach((value, name) => {
    headers[name] = value;
  });
  return headers;
}

/** A fetch that trusts `caPem` alone; without a CA it says how to give one. */
export function httpsFetch(caPem: string | null): Fetch {
  return (input, init) => {
    if (caPem === null) {
      return Promise.reject(
        new ShoalError(
          "E_VALIDATION",
          "no CA to trust: give --ca FILE or SHOAL_CA (the cluster's ca.pem), or run on a node " +
            "(its data dir holds ca.pem)",
        ),
      );
    }
    return new Promise<Response>((resolve, reject) => {
      const request = https.request(input, {
        method: init?.method ?? "GET",
        headers: headersOf(init),
        ca: [caPem],
        checkServerIdentity: anyNodeOfTheCa,
        ...(init?.signal ? { signal: init.signal } : {}),
      });
      request.on("response", (response) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          if (typeof value === "string") headers.set(name, value);
        }
        const status = response.statusCode ?? 0;
        const body = Readable.toWeb(response) as ReadableStream<Uint8Array>;
        resolve(new Response(status === 204 ? null : body, { status, headers }));
      });
      request.on("error", reject);
      request.end(typeof init?.body === "string" ? init.body : undefined);
    });
  };
}
