// What anyone on the LAN can make discovery keep: announcements are bounded in count and expire
// unless heard again, and a browser that heard too many starts afresh. The responder is a twin
// that hands announcements to the browser as multicast would (tests send nothing on a network).
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import type { Service } from "bonjour-service";
import { limits } from "../core/limits.ts";
import { type Announcement, MdnsDiscovery, type Responder } from "./mdns-discovery.ts";

class TwinBrowser extends EventEmitter {
  services: Service[] = [];
  stopped = false;
  constructor(readonly onUp: (service: Service) => void) {
    super();
  }
  hear(service: Service): void {
    this.services.push(service);
    this.onUp(service);
  }
  stop(): void {
    this.stopped = true;
  }
  update(): void {}
}

class TwinResponder {
  browsers: TwinBrowser[] = [];
  find(_options: unknown, onUp: (service: Service) => void): TwinBrowser {
    const browser = new TwinBrowser(onUp);
    this.browsers.push(browser);
    return browser;
  }
  publish(): EventEmitter {
    return new EventEmitter();
  }
  unpublishAll(done: () => void): void {
    done();
  }
  destroy(done: () => void): void {
    done();
  }
  get browser(): TwinBrowser {
    const last = this.browsers.at(-1);
    assert.ok(last, "discovery browses");
    return last;
  }
}

const self: Announcement = {
  nodeId: "self",
  clusterId: "c1",
  address: "10.0.0.1",
  port: 7420,
  version: "1",
};

function announcement(nodeId: string, clusterId = "c1"): Service {
  const txt = { cid: clusterId, nid: nodeId, addr: "10.0.0.9", port: "7420", ver: "1" };
  return { txt, port: 7420 } as unknown as Service;
}

function discovery() {
  const clock = { now: 1_000 };
  const responder = new TwinResponder();
  const found = new MdnsDiscovery({
    announcement: self,
    now: () => clock.now,
    onError: (error) => assert.fail(error),
    responder: responder as unknown as Responder,
  });
  found.start();
  return { found, responder, clock };
}

describe("mDNS discovery", () => {
  it("keeps at most discoveryPeersMax peers, the newest, whatever a flood announces", async () => {
    const { found, responder } = discovery();
    const flood = limits.discoveryPeersMax * 4;
    for (let n = 0; n < flood; n++) responder.browser.hear(announcement(`n${n}`));
    const peers = found.peers();
    assert.equal(peers.length, limits.discoveryPeersMax);
    const ids = new Set(peers.map((p) => p.nodeId));
    assert.ok(ids.has(`n${flood - 1}`), "the newest is kept");
    assert.ok(!ids.has("n0"), "the oldest is forgotten");
    await found.stop();
  });

  it("forgets a peer not heard again within discoveryPeerTtlMs, and narrows to a cluster", async () => {
    const { found, responder, clock } = discovery();
    responder.browser.hear(announcement("quiet"));
    responder.browser.hear(announcement("other", "c2"));
    assert.deepEqual(
      found.peers("c1").map((p) => p.nodeId),
      ["quiet"],
    );
    clock.now += limits.discoveryPeerTtlMs + 1;
    responder.browser.hear(announcement("live"));
    assert.deepEqual(
      found.peers().map((p) => p.nodeId),
      ["live"],
    );
    await found.stop();
  });

  it("never lists itself", async () => {
    const { found, responder } = discovery();
    responder.browser.hear(announcement("self"));
    assert.deepEqual(found.peers(), []);
    await found.stop();
  });

  it("starts a new browser once the old one holds more than discoveryPeersMax services", async (t) => {
    t.mock.timers.enable({ apis: ["setInterval"] });
    const { found, responder } = discovery();
    const first = responder.browser;
    for (let n = 0; n <= limits.discoveryPeersMax; n++) first.hear(announcement(`n${n}`));
    t.mock.timers.tick(limits.discoveryRequeryMs);
    assert.equal(first.stopped, true, "the full browser is stopped");
    assert.equal(responder.browsers.length, 2, "and a fresh one browses");
    assert.equal(responder.browser.services.length, 0);
    await found.stop();
  });
});
