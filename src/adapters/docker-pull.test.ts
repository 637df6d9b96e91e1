// The Docker adapter's pull against a fake engine on loopback: the real engine may not pull here
// (no registry may be contacted), yet the stream handling is where pulls go wrong. The engine
// answers 200 and reports a failed pull inside the progress stream, or refuses with a status.
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { isShoalError } from "../core/errors.ts";
import { DockerRuntime } from "./docker-runtime.ts";

/** Writes progress events as the engine does: one JSON object per line, the status 200 first. */
function progress(response: ServerResponse, events: object[], end: boolean): void {
  response.writeHead(200, { "content-type": "application/json" });
  for (const event of events) response.write(`${JSON.stringify(event)}\n`);
  if (end) response.end();
}

function fakeEngine(): Server {
  return createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://engine");
    const image = url.searchParams.get("fromImage");
    if (request.method !== "POST" || url.pathname !== "/images/create") {
      response.writeHead(404).end();
    } else if (image === "present") {
      const done = { status: "Status: Downloaded newer image for present:1" };
      progress(response, [{ status: "Pulling from library/present" }, done], true);
    } else if (image === "broken") {
      const failed = { errorDetail: { message: "manifest unknown" }, error: "manifest unknown" };
      progress(response, [{ status: "Pulling from library/broken" }, failed], true);
    } else if (image === "stalled") {
      progress(response, [{ status: "Pulling from library/stalled" }], false);
    } else {
      const body = JSON.stringify({ message: `pull access denied for ${image}` });
      response.writeHead(404, { "content-type": "application/json" }).end(body);
    }
  });
}

function rejectsWith(message: string) {
  return (error: unknown) => {
    assert.ok(isShoalError(error));
    assert.equal(error.code, "E_IMAGE_NOT_FOUND");
    assert.equal(error.message, message);
    return true;
  };
}

describe("docker runtime pull (fake engine)", () => {
  const server = fakeEngine();
  let runtime: DockerRuntime;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    runtime = new DockerRuntime({ dockerHost: `tcp://127.0.0.1:${port}` });
  });

  after(async () => {
    await runtime.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("resolves when the progress stream ends without an error", async () => {
    await runtime.pull("present:1", new AbortController().signal);
  });

  it("rejects with the error the engine reports inside the stream", async () => {
    await assert.rejects(
      runtime.pull("broken:1", new AbortController().signal),
      rejectsWith("image not found: broken:1 (pull failed: manifest unknown)"),
    );
  });

  it("rejects with the engine's message when it refuses the pull", async () => {
    await assert.rejects(
      runtime.pull("private:1", new AbortController().signal),
      rejectsWith("image not found: private:1 (pull failed: pull access denied for private)"),
    );
  });

  it("rejects a pull aborted while its stream is open", async () => {
    const controller = new AbortController();
    const pulling = runtime.pull("stalled:1", controller.signal);
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(
      pulling,
      rejectsWith("image not found: stalled:1 (pull failed: cancelled)"),
    );
  });

  it("says the engine is unreachable when nothing answers", async () => {
    const absent = new DockerRuntime({ dockerHost: "tcp://127.0.0.1:1" });
    await assert.rejects(absent.pull("present:1", new AbortController().signal), (error) => {
      assert.ok(isShoalError(error));
      assert.equal(error.code, "E_DOCKER_UNAVAILABLE");
      return true;
    });
    await absent.close();
  });
});
