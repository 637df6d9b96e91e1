// fetch for tests and benchmarks that talk to real agents over HTTPS: trusting a data dir's CA
// (the way the CLI does), or, for liveness probes of a node that has no certificate of its
// cluster yet, trusting nothing and reading only the status.
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";
import type { Fetch } from "../cli/client.ts";
import { httpsFetch } from "../cli/https-fetch.ts";

/** A fetch trusting the CA in `dataDir` (read at each call: a joiner gets one later). */
export function fetchWithDataDirCa(dataDir: string | (() => string)): Fetch {
  return (input, init) => {
    const dir = typeof dataDir === "string" ? dataDir : dataDir();
    const path = join(dir, "ca.pem");
    return httpsFetch(existsSync(path) ? readFileSync(path, "utf8") : null)(input, init);
  };
}

/**
 * The status of `GET url` over TLS without checking the certificate: for /v1/health only (plain
 * HTTP only for the benchmark's agents on --bench-plain-http).
 */
export function probeStatus(url: string, timeoutMs: number): Promise<number> {
  const client = url.startsWith("http:") ? http : https;
  return new Promise((resolve) => {
    const request = client.request(url, {
      rejectUnauthorized: false,
      agent: false,
      signal: AbortSignal.timeout(timeoutMs),
    });
    request.on("response", (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("error", () => resolve(0));
    request.end();
  });
}

/**
 * What any machine on the network can send: a request over TLS that trusts any server, with no
 * client certificate or with `identity` (one of another CA, say). Resolves with the status.
 */
export function untrustedRequest(
  url: string,
  options: { method?: string; body?: string; identity?: { certPem: string; keyPem: string } } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, {
      method: options.method ?? "POST",
      rejectUnauthorized: false,
      agent: false,
      signal: AbortSignal.timeout(5000),
      ...(options.identity ? { cert: options.identity.certPem, key: options.identity.keyPem } : {}),
    });
    request.on("response", (response) => {
      let text = "";
      response.on("data", (chunk) => {
        text += chunk;
      });
      response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
    });
    request.on("error", reject);
    request.end(options.body);
  });
}
