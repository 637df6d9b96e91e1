import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { getRequestListener } from "@hono/node-server";
import { TlsListener } from "../adapters/tls-listener.ts";
import { ShoalError } from "../core/errors.ts";
import type { ShoalEvent } from "../core/types.ts";
import { testApiToken } from "../testing/api-node.ts";
import { type CliHarness, openCliHarness } from "../testing/cli-harness.ts";
import { TestCa } from "../testing/test-ca.ts";
import { ApiClient, errorFromResponse } from "./client.ts";
import { SseParser } from "./sse.ts";

let h: CliHarness;

before(async () => {
  h = await openCliHarness();
});
after(() => h.dispose());

const spec = { name: "api", containers: [{ name: "main", image: "shoal-test/busybox:1" }] };

describe("SseParser", () => {
  it("assembles events split across chunks anywhere, skipping comments", () => {
    const text =
      ': events\n\nid: 1\ndata: {"seq":1}\n\n: keep-alive\r\n\r\nid: 2\r\ndata: {"seq":2}\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const parser = new SseParser();
      const messages = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      assert.deepEqual(messages, [
        { id: "1", data: '{"seq":1}' },
        { id: "2", data: '{"seq":2}' },
      ]);
    }
  });

  it("joins multi-line data and refuses an endless line", () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push("data: a\ndata: b\n\n"), [{ id: null, data: "a\nb" }]);
    assert.throws(() => parser.push("x".repeat(1024 * 1024 + 1)), ShoalError);
  });
});

describe("ApiClient", () => {
  const client = () =>
    new ApiClient({ address: "https://node", token: testApiToken, fetch: h.fetch });

  it("returns parsed JSON and throws the server's code and message", async () => {
    const created = await client().createService(spec);
    assert.equal(created.taskDefinition, "api:1");
    await assert.rejects(client().createService(spec), (error: unknown) => {
      assert.ok(error instanceof ShoalError);
      assert.equal(error.code, "E_CONFLICT");
      assert.equal(error.message, "a service named api already exists");
      return true;
    });
  });

  it("keeps an unknown or non-JSON error readable", () => {
    const proxy = errorFromResponse(502, "<html>Bad Gateway</html>");
    assert.equal(proxy.code, "E_INTERNAL");
    assert.match(proxy.message, /^HTTP 502: <html>Bad Gateway/);
    const future = errorFromResponse(
      409,
      JSON.stringify({ error: { code: "E_NEW", message: "m" } }),
    );
    assert.equal(future.message, "m");
  });

  it("reads the event log to its end without following", async () => {
    const events: ShoalEvent[] = [];
    for await (const event of client().events({ since: 0, follow: false })) events.push(event);
    assert.ok(events.some((event) => event.type === "service.created" && event.service === "api"));
    const seqs = events.map((event) => event.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
  });

  it("follows new events as they are applied", async () => {
    const last = h.test.log.view().lastEventSeq();
    const abort = new AbortController();
    const stream = client().events({ since: last, follow: true, signal: abort.signal });
    const first = stream.next();
    await client().updateService("api", { replicas: 2 });
    const next = await first;
    assert.equal(next.done, false);
    assert.equal((next.value as ShoalEvent).type, "service.scaled");
    abort.abort();
    await stream.return(undefined);
  });

  it("names the address when no agent answers", async () => {
    const nobody = new ApiClient({ address: "https://127.0.0.1:9/", token: "t", ca: "unused" });
    await assert.rejects(nobody.services(), (error: unknown) => {
      assert.ok(error instanceof ShoalError);
      assert.equal(
        error.message,
        "no shoal agent answers at https://127.0.0.1:9: is `shoal agent` running?",
      );
      return true;
    });
  });

  it("gives up on a request after its timeout", async () => {
    // A server that never answers. AbortSignal.timeout does not hold the event loop open (a real
    // socket does), so this fake holds it with a timer of its own.
    const hang = (_: string, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) => {
        const hold = setInterval(() => undefined, 1000);
        init?.signal?.addEventListener("abort", () => {
          clearInterval(hold);
          reject(init.signal?.reason);
        });
      });
    const slow = new ApiClient({ address: "https://node", token: "t", fetch: hang, timeoutMs: 20 });
    await assert.rejects(slow.cluster(), /did not answer within 0\.02s/);
    await assert.rejects(slow.events().next(), /did not answer within 0\.02s/);
  });
});

describe("ApiClient over a real socket", () => {
  /** The harness's API behind the TLS listener with a certificate of `ca`. */
  async function serveTls(ca: TestCa) {
    const server = http.createServer(getRequestListener(h.api.app.fetch));
    const listener = new TlsListener(server, {
      identity: await ca.identity("node1"),
      isRevoked: () => false,
    });
    await listener.listen(0, "127.0.0.1");
    const { port } = listener.server.address() as AddressInfo;
    return { port, close: () => listener.close() };
  }

  it("talks HTTPS to the API, trusting the cluster's CA, events included", async () => {
    const ca = await TestCa.create();
    const served = await serveTls(ca);
    try {
      const client = new ApiClient({
        address: `127.0.0.1:${served.port}`,
        token: testApiToken,
        ca: ca.caPem,
      });
      assert.equal((await client.cluster()).id, "cluster-test");
      const events: ShoalEvent[] = [];
      for await (const event of client.events({ follow: false })) events.push(event);
      assert.ok(events.length > 0);
    } finally {
      await served.close();
    }
  });

  it("sends nothing to a server of another CA, nor without a CA, and says why", async () => {
    const served = await serveTls(await TestCa.create());
    const other = await TestCa.create();
    try {
      const address = `127.0.0.1:${served.port}`;
      const stranger = new ApiClient({ address, token: testApiToken, ca: other.caPem });
      await assert.rejects(stranger.cluster(), (error: unknown) => {
        assert.ok(error instanceof ShoalError);
        assert.equal(error.code, "E_UNAUTHORIZED");
        assert.match(error.message, /is not a node of this cluster's CA/);
        return true;
      });
      const blind = new ApiClient({ address, token: testApiToken, ca: null });
      await assert.rejects(blind.cluster(), /no CA to trust: give --ca FILE or SHOAL_CA/);
    } finally {
      await served.close();
    }
  });
});
