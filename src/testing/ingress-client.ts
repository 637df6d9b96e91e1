// A client of a service's ingress port, as a person's would be: one request at a time over a new
// connection, counting what was sent, what failed and the longest silence between two answers.
// Shared by the ingress e2e test, `npm run bench` and the failover demo.
import http from "node:http";

export interface IngressClientStats {
  sent: number;
  failed: number;
  /** The longest time between two answered requests (or the start and the first). */
  longestGapMs: number;
  /** The first few failures, for a message. */
  failures: string[];
}

export interface IngressRequest {
  path?: string;
  /** POST with a small body (a request a proxy may not send twice), else GET. */
  post?: boolean;
  timeoutMs?: number;
}

/**
 * One request; resolves with the page, rejects on an error, a status other than 200, or an empty
 * page (busybox ends a CGI answer by closing, so an answer cut short is a 200 with no page).
 */
export function ingressRequest(
  address: string,
  port: number,
  options: IngressRequest = {},
): Promise<string> {
  const { path = "/", post = false, timeoutMs = 5000 } = options;
  return new Promise((resolve, reject) => {
    const method = post ? "POST" : "GET";
    const request = http.request(
      { host: address, port, path, method, agent: false, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () =>
          res.statusCode === 200 && body.trim() !== ""
            ? resolve(body.trim())
            : reject(new Error(`${res.statusCode} ${JSON.stringify(body)}`)),
        );
        res.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
    request.end(post ? "a body" : undefined);
  });
}

const failuresKept = 10;

/** Asks again and again, `pauseMs` apart, from `start` until `stop`. */
export class IngressClient {
  private running = false;
  private loop: Promise<void> | null = null;
  readonly stats: IngressClientStats = { sent: 0, failed: 0, longestGapMs: 0, failures: [] };

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly request: IngressRequest = {},
    private readonly pauseMs = 20,
  ) {}

  start(): this {
    this.running = true;
    this.loop = this.run();
    return this;
  }

  async stop(): Promise<IngressClientStats> {
    this.running = false;
    await this.loop;
    return this.stats;
  }

  private async run(): Promise<void> {
    let lastAnswer = performance.now();
    while (this.running) {
      this.stats.sent += 1;
      try {
        await ingressRequest(this.address, this.port, this.request);
        const now = performance.now();
        this.stats.longestGapMs = Math.max(this.stats.longestGapMs, now - lastAnswer);
        lastAnswer = now;
      } catch (error) {
        this.stats.failed += 1;
        if (this.stats.failures.length < failuresKept) this.stats.failures.push(String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
    }
  }
}
