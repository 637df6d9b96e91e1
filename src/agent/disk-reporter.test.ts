import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diskReport } from "./disk-reporter.ts";

describe("what a node reports of its disk", () => {
  it("reports a full disk its row does not show, and room once the row shows it full", () => {
    assert.deepEqual(diskReport({ full: true, rowFull: false, unrecorded: false }), {
      full: true,
      unrecorded: true,
    });
    assert.deepEqual(diskReport({ full: true, rowFull: true, unrecorded: true }), {
      full: true,
      unrecorded: false,
    });
    assert.deepEqual(diskReport({ full: false, rowFull: true, unrecorded: false }), {
      full: false,
      unrecorded: false,
    });
  });

  it("reports a full spell that ended before its row could show it, then the room after", () => {
    // A lone node's log takes nothing while its disk is full: the spell is recorded after it.
    const afterSpell = diskReport({ full: false, rowFull: false, unrecorded: true });
    assert.deepEqual(afterSpell, { full: true, unrecorded: true });
    const recorded = diskReport({ full: false, rowFull: true, unrecorded: afterSpell.unrecorded });
    assert.deepEqual(recorded, { full: false, unrecorded: false });
  });

  it("reports nothing while the disk has room and always had", () => {
    assert.deepEqual(diskReport({ full: false, rowFull: false, unrecorded: false }), {
      full: false,
      unrecorded: false,
    });
  });
});
