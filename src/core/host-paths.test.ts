import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hostPathAllowed, hostPathsOf, resolveHostPath } from "./host-paths.ts";

const policy = {
  allowed: ["/srv/media", "/mnt/usb/"],
  denied: ["/var/lib/shoal", "/var/run/docker.sock"],
};

describe("host paths", () => {
  it("allows what lies under an allowed directory, and nothing else", () => {
    assert.equal(hostPathAllowed("/srv/media", policy), true);
    assert.equal(hostPathAllowed("/srv/media/films/", policy), true);
    assert.equal(hostPathAllowed("/mnt/usb/x", policy), true);
    assert.equal(hostPathAllowed("/srv/mediax", policy), false, "a sibling with the same prefix");
    assert.equal(hostPathAllowed("/srv/media/../../etc", policy), false, "climbing out");
    assert.equal(hostPathAllowed("/etc", policy), false);
    assert.equal(
      hostPathAllowed("/srv/media", { allowed: [], denied: [] }),
      false,
      "none by default",
    );
  });

  it("never reaches the data dir or the engine's socket, even under an allowed /", () => {
    const open = { allowed: ["/"], denied: policy.denied };
    assert.equal(hostPathAllowed("/home/pi", open), true);
    assert.equal(hostPathAllowed("/var/lib/shoal/raft.db", open), false);
    assert.equal(hostPathAllowed("/var/run/docker.sock", open), false);
    assert.equal(hostPathAllowed("/var/lib", open), false, "it would contain the data dir");
    assert.equal(hostPathAllowed("/", open), false);
  });

  it("lists a containers' host paths once each, named volumes left out", () => {
    const containers = [
      { mounts: [{ source: "/srv/media/" }, { source: "cache" }] },
      { mounts: [{ source: "/srv/media" }] },
    ];
    assert.deepEqual(hostPathsOf(containers), ["/srv/media"]);
  });

  it("follows the symlinks of a path's existing part, keeping the rest as written", () => {
    const links: Record<string, string> = {
      "/srv/x/s": "/run/docker.sock",
      "/srv/x": "/srv/x",
      "/srv": "/srv",
      "/": "/",
    };
    const realpath = (path: string) => links[path] ?? null;
    assert.equal(resolveHostPath("/srv/x/s", realpath), "/run/docker.sock");
    assert.equal(resolveHostPath("/srv/x/new/dir/", realpath), "/srv/x/new/dir");
    const open = { allowed: ["/srv"], denied: ["/run/docker.sock"] };
    assert.equal(hostPathAllowed("/srv/x/s", open), true, "as written");
    assert.equal(
      hostPathAllowed(resolveHostPath("/srv/x/s", realpath), open),
      false,
      "where it leads",
    );
  });
});
