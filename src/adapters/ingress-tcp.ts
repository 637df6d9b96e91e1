// Dialling an upstream with a short deadline, and splicing a client's connection to it; with a
// PROXY protocol v2 header first when the service asks, so the task sees the client's address
// (Swarm's routing mesh loses it, moby/moby#25526). No idle timeout: a connection lives as long
// as both ends keep it (Swarm's IPVS cuts idle ones at 900 s, moby/moby#31208); keep-alive probes
// find a peer that vanished.
import net from "node:net";
import {
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Command as ProxyCommand,
  TransportProtocol,
  V2ProxyProtocol,
} from "proxy-protocol-js";
import type { Upstream } from "../agent/ingress-routes.ts";
import { limits } from "../core/limits.ts";

/** Opens a connection to an upstream; a test puts in one that never connects. */
export type Dial = (upstream: Upstream) => net.Socket;

// Half-open, as the client side is: a task that ends its half leaves the other flowing.
export const dialTcp: Dial = (upstream) =>
  net.connect({ host: upstream.address, port: upstream.port, noDelay: true, allowHalfOpen: true });

/** The connected socket, or null when the upstream refused or did not answer in time. */
export function connectWithin(
  dial: Dial,
  upstream: Upstream,
  ms: number,
): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const socket = dial(upstream);
    const done = (connected: boolean) => {
      clearTimeout(timer);
      socket.off("connect", onConnect).off("error", onError);
      if (!connected) socket.destroy();
      resolve(connected ? socket : null);
    };
    const onConnect = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    socket.once("connect", onConnect).once("error", onError);
  });
}

/**
 * Pipes both ways; a half-close passes through (each side's end ends the other's writing). When
 * one side is closed, the other is closed once what was written to it is sent (at once after an
 * error); `onClose` runs once both are closed.
 */
export function splice(client: net.Socket, upstream: net.Socket, onClose: () => void): void {
  let open = 2;
  const pair: [net.Socket, net.Socket][] = [
    [client, upstream],
    [upstream, client],
  ];
  for (const [socket, other] of pair) {
    socket.setKeepAlive(true, limits.ingressKeepAliveProbeMs);
    socket.setNoDelay(true);
    socket.on("error", () => undefined);
    // Once one side is closed the other has nowhere to send: it gets what was written, then goes.
    socket.once("close", (hadError: boolean) => {
      if (hadError) other.destroy();
      else other.end(() => other.destroy());
      open -= 1;
      if (open === 0) onClose();
    });
  }
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}

/** The PROXY v2 header of a TCP connection: the client's address and the one it reached. */
export function proxyHeader(client: net.Socket): Uint8Array {
  const source = plainAddress(client.remoteAddress ?? "");
  const target = plainAddress(client.localAddress ?? "");
  const sourcePort = client.remotePort ?? 0;
  const targetPort = client.localPort ?? 0;
  const address =
    net.isIPv4(source) && net.isIPv4(target)
      ? new IPv4ProxyAddress(
          IPv4Address.createFrom(source.split(".").map(Number)),
          sourcePort,
          IPv4Address.createFrom(target.split(".").map(Number)),
          targetPort,
        )
      : new IPv6ProxyAddress(
          IPv6Address.createFrom(ipv6Bytes(source)),
          sourcePort,
          IPv6Address.createFrom(ipv6Bytes(target)),
          targetPort,
        );
  return new V2ProxyProtocol(ProxyCommand.PROXY, TransportProtocol.STREAM, address).build();
}

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) -> `10.0.0.1`. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The 16 bytes of an IPv6 address (an IPv4 one in its mapped form). */
function ipv6Bytes(address: string): number[] {
  return ipv6Words(address).flatMap((word) => [word >> 8, word & 0xff]);
}

function ipv6Words(address: string): number[] {
  if (net.isIPv4(address)) {
    const [a = 0, b = 0, c = 0, d = 0] = address.split(".").map(Number);
    return [0, 0, 0, 0, 0, 0xffff, (a << 8) | b, (c << 8) | d];
  }
  const [head = "", tail = ""] = address.split("::");
  const words = (part: string) =>
    part === "" ? [] : part.split(":").map((w) => Number.parseInt(w, 16));
  const front = words(head);
  const back = address.includes("::") ? words(tail) : [];
  return [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
}
