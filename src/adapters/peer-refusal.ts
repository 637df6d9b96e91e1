// Which valid certificates of the cluster's CA a node refuses all the same, from its own replica.
import type { NodeInfo } from "../core/types.ts";
import type { PeerOfSocket } from "./tls-listener.ts";

/**
 * A certificate of the CA refused all the same: its node left (`shoal node rm`), or its key is not
 * the one pinned at admission (every member holds the CA key and could mint one), or its node is
 * unknown to a replica that already holds this node's own row (so has seen every node admitted
 * before it; a replica still catching up takes the leader it does not know yet).
 */
export function refusedPeer(
  view: { nodeById(id: string): NodeInfo | null } | null,
  selfId: string,
  peer: Pick<PeerOfSocket, "nodeId" | "keyDigest">,
): boolean {
  if (!view) return false;
  const row = view.nodeById(peer.nodeId);
  if (!row) return view.nodeById(selfId) !== null;
  if (row.status === "left") return true;
  return row.keyDigest !== "" && row.keyDigest !== peer.keyDigest;
}
