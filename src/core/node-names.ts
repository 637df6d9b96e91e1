// How a certificate names a shoal node: the alternative name `URI:shoal://node/<id>`. One home for
// it: the CA writes it, and the TLS listener, the peer clients, joiners and the CLI read it.

export const nodeUriPrefix = "shoal://node/";

/** The node id a certificate's alternative names carry (as TLS prints them), or null. */
export function nodeIdOfNames(subjectAltName: string | undefined): string | null {
  for (const name of (subjectAltName ?? "").split(", ")) {
    if (name.startsWith(`URI:${nodeUriPrefix}`)) return name.slice(4 + nodeUriPrefix.length);
  }
  return null;
}

/**
 * A `checkServerIdentity` that takes any node of the CA the connection trusts: for a client that
 * dials an address, not a node (the CLI, a joiner). Host names do not matter; addresses move.
 */
export function anyNodeOfTheCa(
  _host: string,
  certificate: { subjectaltname?: string },
): Error | undefined {
  return nodeIdOfNames(certificate.subjectaltname)
    ? undefined
    : new Error("the server's certificate names no shoal node");
}
