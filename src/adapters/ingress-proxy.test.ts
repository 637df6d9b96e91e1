import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, it } from "node:test";
import { V2ProxyProtocol } from "proxy-protocol-js";
import type { Upstream } from "../agent/ingress-routes.ts";
import { limits } from "../core/limits.ts";
import {
  closeAll,
  freePort,
  httpAsk,
  httpListener,
  httpUpstream,
  listening,
  proxy,
  route,
  tcpAsk,
  tcpListener,
  tcpUpstream,
  upstream,
} from "../testing/ingress-harness.ts";
import { waitFor } from "../testing/wait.ts";
import { dialTcp } from "./ingress-tcp.ts";

after(closeAll);

describe("the ingress proxy in TCP mode", () => {
  it("forwards a connection, and one to an upstream that refuses goes to another", async () => {
    const good = await tcpUpstream("good");
    const refused = await freePort();
    const port = await freePort();
    const table = { listeners: [tcpListener(port, [upstream("refuses", refused)])] };
    const { proxy: ingress, changed } = proxy(table);
    await listening(ingress, port);
    table.listeners = [
      tcpListener(port, [upstream("refuses", refused), upstream("good", good.port)]),
    ];
    changed();
    await new Promise((resolve) => setTimeout(resolve, limits.ingressRefreshMs * 3));
    for (let round = 0; round < 6; round++) assert.equal(await tcpAsk(port), "good\n");
  });

  it("gives up on an upstream that does not answer after the connect timeout", async () => {
    const good = await tcpUpstream("good");
    const port = await freePort();
    const silent = upstream("silent", 1);
    const table = { listeners: [tcpListener(port, [silent, upstream("good", good.port)])] };
    // The silent upstream's connect never completes, as with a host that vanished.
    const dial = (target: Upstream) =>
      target.taskId === "silent" ? new net.Socket() : dialTcp(target);
    const { proxy: ingress } = proxy(table, { dial });
    await listening(ingress, port);
    const started = performance.now();
    const answers = [];
    for (let round = 0; round < 8; round++) answers.push(await tcpAsk(port));
    assert.deepEqual(new Set(answers), new Set(["good\n"]));
    assert.equal(answers.length, 8);
    // At most one connection waited for the silent upstream: then it went last.
    assert.ok(performance.now() - started < limits.ingressConnectTimeoutMs * 2);
  });

  it("sends a PROXY v2 header with the client's address when the service asks", async () => {
    const seen = await tcpUpstream("proxied");
    const port = await freePort();
    const table = { listeners: [tcpListener(port, [upstream("p", seen.port)], "v2")] };
    const { proxy: ingress } = proxy(table);
    await listening(ingress, port);
    assert.equal(await tcpAsk(port, "payload\n"), "proxied\n");
    const first = seen.received[0] ?? Buffer.alloc(0);
    const header = V2ProxyProtocol.parse(new Uint8Array(first));
    const address = header.proxyAddress as unknown as {
      sourceAddress: { address: number[] };
      destinationPort: number;
    };
    assert.deepEqual(address.sourceAddress.address, [127, 0, 0, 1]);
    assert.equal(address.destinationPort, port);
    assert.equal(Buffer.from(header.data ?? new Uint8Array()).toString(), "payload\n");
  });

  it("says when another program holds the port, and listens once it is free", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as net.AddressInfo).port;
    const { proxy: ingress } = proxy(
      { listeners: [tcpListener(port, [])] },
      { listenRetryMs: 100 },
    );
    await waitFor(
      "the conflict to be seen",
      async () => ingress.statuses()[0]?.message === "another program holds the port",
    );
    assert.equal(ingress.statuses()[0]?.listening, false);
    await new Promise((resolve) => holder.close(resolve));
    await listening(ingress, port);
  });
});

describe("the ingress proxy in HTTP mode", () => {
  it("routes by Host, adds X-Forwarded-*, and retries a request that reached no upstream", async () => {
    const a = await httpUpstream("a");
    const b = await httpUpstream("b");
    const refused = await freePort();
    const port = await freePort();
    const listener = httpListener(port, [
      route("a", ["a.home.arpa"], [upstream("refuses", refused), upstream("a", a)]),
      route("b", [], [upstream("b", b)]),
      route("none", ["none.home.arpa"], []),
    ]);
    const { proxy: ingress } = proxy({ listeners: [listener] });
    await listening(ingress, port);
    for (let round = 0; round < 4; round++) {
      const answer = await httpAsk(port, "A.home.arpa");
      assert.equal(answer.status, 200);
      const body = JSON.parse(answer.text) as { name: string; headers: Record<string, string> };
      assert.equal(body.name, "a");
      assert.equal(body.headers["x-forwarded-for"], "127.0.0.1");
      assert.equal(body.headers["x-forwarded-proto"], "http");
      assert.equal(body.headers.host, "A.home.arpa");
    }
    assert.equal(JSON.parse((await httpAsk(port, "other.example")).text).name, "b");
    const none = await httpAsk(port, "none.home.arpa");
    assert.equal(none.status, 503);
    assert.match(none.text, /no healthy task of service none/);
  });

  it("answers 404 for a Host no service routes", async () => {
    const a = await httpUpstream("a");
    const port = await freePort();
    const listener = httpListener(port, [route("a", ["a.home.arpa"], [upstream("a", a)])]);
    const { proxy: ingress } = proxy({ listeners: [listener] });
    await listening(ingress, port);
    const answer = await httpAsk(port, "b.home.arpa");
    assert.equal(answer.status, 404);
  });

  it("sends no new request to a task that left the table", async () => {
    const a = await httpUpstream("a");
    const b = await httpUpstream("b");
    const port = await freePort();
    const web = (upstreams: Upstream[]) => httpListener(port, [route("web", [], upstreams)]);
    const table = { listeners: [web([upstream("a", a), upstream("b", b)])] };
    const { proxy: ingress, changed } = proxy(table);
    await listening(ingress, port);
    table.listeners = [web([upstream("b", b)])];
    changed();
    await new Promise((resolve) => setTimeout(resolve, limits.ingressRefreshMs * 3));
    for (let round = 0; round < 6; round++) {
      assert.equal(JSON.parse((await httpAsk(port, "x")).text).name, "b");
    }
  });
});
