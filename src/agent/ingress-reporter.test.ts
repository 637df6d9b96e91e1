import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fail, ok } from "../core/errors.ts";
import type { IngressListening, NodeInfo } from "../core/types.ts";
import { node } from "../scheduler/test-harness.ts";
import type { CommandLog } from "../state/command-log.ts";
import type { Command } from "../state/commands.ts";
import { silentLogger } from "../testing/cluster-room.ts";
import { reportOnce } from "./ingress-reporter.ts";

function setup(row: NodeInfo | null, statuses: IngressListening[], refuse = false) {
  const proposed: Command[] = [];
  const warned: string[] = [];
  const log = {
    view: () => ({ nodeById: () => row }),
    propose: async (command: Command) => {
      proposed.push(command);
      return refuse ? fail("E_NO_QUORUM", "no quorum") : ok(null);
    },
  } as unknown as CommandLog;
  const logger = {
    ...silentLogger,
    warn: (_: object, message?: string) => warned.push(message ?? ""),
  };
  const options = { log, nodeId: "n1", statuses: () => statuses, now: () => 42, logger };
  return { proposed, warned, report: () => reportOnce(options) };
}

const listening = { port: 8080, listening: true, message: "listening" };

describe("the ingress report", () => {
  it("proposes what the ingress listens on when the node's row says otherwise", async () => {
    const { proposed, report } = setup(node("n1"), [listening]);
    await report();
    assert.deepEqual(proposed, [
      { type: "node.ingress", at: 42, nodeId: "n1", listeners: [listening] },
    ]);
  });

  it("proposes nothing when the row says the same, or the node left or is unknown", async () => {
    for (const row of [
      node("n1", { ingress: [listening] }),
      node("n1", { status: "left" }),
      null,
    ]) {
      const { proposed, report } = setup(row, [listening]);
      await report();
      assert.deepEqual(proposed, []);
    }
  });

  it("says when the report was refused, and makes it again at the next look", async () => {
    const { proposed, warned, report } = setup(node("n1"), [listening], true);
    await report();
    await report();
    assert.equal(proposed.length, 2);
    assert.deepEqual(warned, ["ingress report refused", "ingress report refused"]);
  });
});
