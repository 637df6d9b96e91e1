import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../raft/types.ts";
import { decodeMessages, encodeMessages } from "./peer-codec.ts";

describe("peer message codec", () => {
  it("round-trips every byte field", () => {
    const messages: Message[] = [
      {
        type: "append",
        from: "a",
        to: "b",
        term: 3,
        prevIndex: 4,
        prevTerm: 2,
        commitIndex: 4,
        round: 9,
        entries: [{ index: 5, term: 3, kind: "command", data: new Uint8Array([1, 2, 255]) }],
      },
      {
        type: "snapshot",
        from: "a",
        to: "c",
        term: 3,
        round: 1,
        data: new Uint8Array([7]),
        snapshot: { index: 5, term: 3, membership: { voters: ["a", "b"], learners: ["c"] } },
      },
      { type: "heartbeatResponse", from: "b", to: "a", term: 3, round: 9 },
    ];
    const decoded = decodeMessages(JSON.parse(encodeMessages(messages)));
    assert.deepEqual(decoded, messages);
  });

  it("refuses a malformed message with E_VALIDATION", () => {
    assert.throws(
      () => decodeMessages({ messages: [{ type: "append", from: "a" }] }),
      /bad peer message/,
    );
    assert.throws(() =>
      decodeMessages({ messages: [{ type: "boom", from: "a", to: "b", term: 1 }] }),
    );
  });
});
