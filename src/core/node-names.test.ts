import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { anyNodeOfTheCa, nodeIdOfNames } from "./node-names.ts";

describe("node names", () => {
  it("reads the node id from a certificate's alternative names, the first one only", () => {
    const names =
      "URI:shoal://node/pi1, IP Address:10.0.0.5, DNS:pi-one.local, URI:shoal://node/pi2";
    assert.equal(nodeIdOfNames(names), "pi1");
    assert.equal(
      nodeIdOfNames("DNS:shoal://node/x, IP Address:10.0.0.5"),
      null,
      "a DNS name is no node",
    );
    assert.equal(nodeIdOfNames(undefined), null);
  });

  it("takes a server that names any node, and refuses one that names none", () => {
    assert.equal(anyNodeOfTheCa("10.0.0.5", { subjectaltname: "URI:shoal://node/pi1" }), undefined);
    assert.match(
      String(anyNodeOfTheCa("10.0.0.5", { subjectaltname: "DNS:example.com" })),
      /names no shoal node/,
    );
  });
});
