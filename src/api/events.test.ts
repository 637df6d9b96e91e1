import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openTestNode, type TestNode, testApiToken } from "../testing/api-node.ts";
import { type Api, createApi } from "./app.ts";

let test: TestNode;
let api: Api;

before(async () => {
  test = await openTestNode();
  api = createApi(test.node);
});
after(() => {
  api.close();
  test.dispose();
});

const headers = { "content-type": "application/json", authorization: `Bearer ${testApiToken}` };

function createService(name: string) {
  const containers = [{ name: "httpd", image: "shoal-test/busybox:1", memoryMb: 32, cpu: 0.1 }];
  return api.app.request("/v1/services", {
    method: "POST",
    headers,
    body: JSON.stringify({ name, replicas: 2, containers }),
  });
}

/** Reads the stream until it has sent event `target`, or gives up after `waitMs` of silence. */
async function readIdsUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  target: number,
  waitMs: number,
): Promise<number[]> {
  const decoder = new TextDecoder();
  let text = "";
  const ids = () => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
  while ((ids().at(-1) ?? 0) < target) {
    let timer: NodeJS.Timeout | undefined;
    const silence = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), waitMs);
    });
    const chunk = await Promise.race([reader.read(), silence]);
    clearTimeout(timer);
    if (chunk === null || chunk.done) break;
    text += decoder.decode(chunk.value, { stream: true });
  }
  return ids();
}

describe("event stream", () => {
  it("delivers every event, in order, to a stream that is slow to read", async () => {
    const view = test.log.view();
    const since = view.lastEventSeq();
    const response = await api.app.request(`/v1/events?since=${since}`, { headers });
    assert.equal(response.status, 200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    // Nothing is read while the services are created, so the stream's writes block on the client
    // and events are applied during a write.
    for (const name of ["a", "b", "c", "d", "e"]) {
      assert.equal((await createService(name)).status, 201);
    }
    const target = view.lastEventSeq();
    assert.ok(target >= since + 5);
    const ids = await readIdsUntil(reader, target, 1000);
    await reader.cancel();
    const expected = Array.from({ length: target - since }, (_, i) => since + 1 + i);
    assert.deepEqual(ids, expected);
  });
});
