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
  it("finds the local agent, its token file and its CA by default", () => {
    const files = { "/var/lib/shoal/api.token": "tok\n", "/var/lib/shoal/ca.pem": "CA" };
    const target = resolveTarget({}, fakeSystem({ env: {}, uid: 0, files }));
    assert.deepEqual(target, { address: "https://127.0.0.1:7420", token: "tok", ca: "CA" });
  });

  it("takes the CA from --ca, else SHOAL_CA, and refuses one it cannot read", () => {
    const files = { "/a/api.token": "t", "/a/ca.pem": "local", "/x.pem": "flag", "/y.pem": "env" };
    const system = fakeSystem({ env: { SHOAL_CA: "/y.pem" }, files });
    assert.equal(resolveTarget({ dataDir: "/a", ca: "/x.pem" }, system).ca, "flag");
    assert.equal(resolveTarget({ dataDir: "/a" }, system).ca, "env");
    const plain = fakeSystem({ env: {}, files });
    assert.equal(resolveTarget({ dataDir: "/a" }, plain).ca, "local");
    assert.throws(
      () => resolveTarget({ dataDir: "/a", ca: "/none.pem" }, plain),
      /cannot read the CA file \/none\.pem/,
    );
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
      address: "https://10.0.0.5:7420",
      token: "remote",
      ca: null,
    });
  });

  it("normalizes and checks addresses", () => {
    assert.equal(normalizeAddress("https://10.0.0.5:7420/"), "https://10.0.0.5:7420");
    assert.equal(normalizeAddress("https://pi.local"), "https://pi.local");
    assert.equal(normalizeAddress("pi.local:7420"), "https://pi.local:7420");
    assert.throws(() => normalizeAddress("ftp://pi"), ShoalError);
    assert.throws(() => normalizeAddress("http://10.0.0.5:7420"), /HTTPS only/);
    assert.throws(() => normalizeAddress("https://[bad"), ShoalError);
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
