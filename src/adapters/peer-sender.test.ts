// The sender over real mutual TLS on loopback: what a member's answer may carry. A member that
// answers with a message claiming another sender (a forged append from a made-up member, a forged
// acknowledgement) or addressed to another node has it dropped; only what it says of itself to
// this node reaches the core.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import type { Message } from "../raft/types.ts";
import { TestCa } from "../testing/test-ca.ts";
import { decodeMessages, encodeMessages } from "./peer-codec.ts";
import { HttpPeerSender } from "./peer-sender.ts";
import { acceptPeerStreams } from "./peer-stream.ts";
import { PeerTls } from "./peer-tls.ts";
import type { TlsListener } from "./tls-listener.ts";

const heartbeat = (from: string, to: string): Message => ({
  type: "heartbeat",
  from,
  to,
  term: 3,
  commitIndex: 1,
  round: 1,
});
const ack = (from: string, to: string): Message => ({
  type: "heartbeatResponse",
  from,
  to,
  term: 3,
  round: 1,
});
const forgedAppend: Message = {
  type: "append",
  from: "intruder",
  to: "node-a",
  term: 4,
  prevIndex: 0,
  prevTerm: 0,
  entries: [],
  commitIndex: 0,
  round: 0,
};

describe("peer sender", () => {
  let listener: TlsListener;
  let base: string;
  let tls: PeerTls;

  before(async () => {
    const ca = await TestCa.create();
    // node-x answers every frame with its own ack, a forged append from a made-up member, an ack
    // in another member's name and one addressed to another node.
    const server = http.createServer((_request, response) => response.writeHead(404).end());
    acceptPeerStreams(server, () => ({
      accepts: () => true,
      answer: async (node, payload) => {
        const asked = decodeMessages(JSON.parse(payload));
        assert.equal(node, "node-a");
        assert.equal(asked.length, 1);
        return encodeMessages([
          ack("node-x", "node-a"),
          forgedAppend,
          ack("node-y", "node-a"),
          ack("node-x", "node-b"),
        ]);
      },
    }));
    ({ base, listener } = await ca.serve(server, "node-x"));
    tls = new PeerTls(await ca.identity("node-a"));
  });

  after(async () => {
    tls.closeAll();
    await listener.close();
  });

  it("takes from an answer only what the member asked says of itself to this node", async () => {
    const taken: Message[] = [];
    const errors: string[] = [];
    const sender = new HttpPeerSender({
      nodeId: "node-a",
      wire: tls,
      resolve: () => base,
      onAnswers: (messages) => taken.push(...messages),
      onError: (_peer, error) => errors.push(String(error)),
    });
    try {
      sender.send([heartbeat("node-a", "node-x")]);
      const deadline = Date.now() + 5000;
      while (taken.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.deepEqual(taken, [ack("node-x", "node-a")]);
      assert.match(
        errors.join("\n"),
        /dropped a append from intruder to node-a in node-x's answer/,
      );
    } finally {
      sender.close();
    }
  });
});
