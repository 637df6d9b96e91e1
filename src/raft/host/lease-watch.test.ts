import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type LeadershipChange, LeaseWatch } from "./lease-watch.ts";

function watch() {
  const pending: (() => void)[] = [];
  const heard: string[] = [];
  const lease = new LeaseWatch((notice) => pending.push(notice));
  const said = (change: LeadershipChange) => `${change.leading ? "gained" : "lost"} ${change.term}`;
  lease.onChange((change) => heard.push(said(change)));
  const deliver = () => {
    for (const notice of pending.splice(0)) notice();
  };
  return { lease, heard, pending, deliver };
}

describe("the lease watch", () => {
  it("tells of gaining and losing the lease once each, after the host's turn", () => {
    const { lease, heard, pending, deliver } = watch();
    lease.observe(false, 1);
    lease.observe(true, 1);
    lease.observe(true, 1);
    assert.equal(heard.length, 0, "nothing is heard inside the host's step");
    assert.equal(pending.length, 1);
    deliver();
    lease.observe(false, 1);
    lease.observe(false, 2);
    deliver();
    assert.deepEqual(heard, ["gained 1", "lost 1"]);
  });

  it("ends the old term's lease before the new term's begins", () => {
    const { lease, heard, deliver } = watch();
    lease.observe(true, 1);
    lease.observe(true, 2);
    deliver();
    assert.deepEqual(heard, ["gained 1", "lost 1", "gained 2"]);
  });

  it("ends a held lease when the host closes", () => {
    const { lease, heard, deliver } = watch();
    lease.observe(true, 4);
    lease.close();
    deliver();
    assert.deepEqual(heard.at(-1), "lost 4");
    assert.equal(lease.leading, false);
  });
});
