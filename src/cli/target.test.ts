import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ShoalError } from "../core/errors.ts";
import { fakeSystem } from "../testing/cli-harness.ts";
import { defaultDataDir, normalizeAddress, resolveTarget } from "./target.ts";

describe("defaultDataDir", () => {
  const home = "/home/pi";
  it("is /var/lib/shoal for root and XDG data home otherwise", () => {
    assert.equal(defaultDataDir({ env: {}, uid: 0, home }), "/var/lib/shoal");
    assert.equal(defaultDataDir({ env: {}, uid: 1000, home }), "/home/pi/.local/share/shoal");
    const xdg = { XDG_DATA_HOME: "/data" };
    assert.equal(defaultDataDir({ env: xdg, uid: 1000, home }), "/data/shoal");
    const relative = { XDG_DATA_HOME: "data" };
    assert.equal(defaultDataDir({ env: relative, uid: 1000, home }), "/home/pi/.local/share/shoal");
  });

  it("takes SHOAL_DATA_DIR first", () => {
    assert.equal(defaultDataDir({ env: { SHOAL_DATA_DIR: "/x" }, uid: 0, home }), "/x");
  });
});

describe("resolveTarget", () => {
  it("finds the local agent and its token file by default", () => {
    const files = { "/var/lib/shoal/api.token": "tok\n" };
    const target = resolveTarget({}, fakeSystem({ env: {}, uid: 0, files }));
    assert.deepEqual(target, { address: "http://127.0.0.1:7420", token: "tok" });
  });

  it("prefers --data-dir over SHOAL_DATA_DIR", () => {
    const files = { "/a/api.token": "from-flag" };
    const system = fakeSystem({ env: { SHOAL_DATA_DIR: "/b" }, files });
    assert.equal(resolveTarget({ dataDir: "/a" }, system).token, "from-flag");
    assert.throws(() => resolveTarget({}, system), /\/b\/api\.token does not exist/);
  });

  it("lets SHOAL_ADDR and SHOAL_API_TOKEN override", () => {
    const env = { SHOAL_ADDR: "10.0.0.5:7420", SHOAL_API_TOKEN: "remote" };
    assert.deepEqual(resolveTarget({}, fakeSystem({ env })), {
      address: "http://10.0.0.5:7420",
      token: "remote",
    });
  });

  it("normalizes and checks addresses", () => {
    assert.equal(normalizeAddress("http://10.0.0.5:7420/"), "http://10.0.0.5:7420");
    assert.equal(normalizeAddress("https://pi.local"), "https://pi.local");
    assert.equal(normalizeAddress("pi.local:7420"), "http://pi.local:7420");
    assert.throws(() => normalizeAddress("ftp://pi"), ShoalError);
    assert.throws(() => normalizeAddress("http://[bad"), ShoalError);
  });

  it("says where it looked for a missing or empty token", () => {
    const system = fakeSystem({ env: {}, uid: 1000 });
    assert.throws(
      () => resolveTarget({}, system),
      (error: unknown) => {
        assert.ok(error instanceof ShoalError);
        assert.equal(error.code, "E_UNAUTHORIZED");
        assert.match(error.message, /\/home\/pi\/\.local\/share\/shoal\/api\.token does not exist/);
        return true;
      },
    );
    const empty = fakeSystem({ env: {}, uid: 0, files: { "/var/lib/shoal/api.token": "\n" } });
    assert.throws(() => resolveTarget({}, empty), /api\.token is empty/);
  });
});
