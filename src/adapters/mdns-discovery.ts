// Finds peers on the LAN over mDNS (`_shoal._tcp`) and announces this node. mDNS only proposes
// candidates: a crashed peer sends no goodbye and stays listed, so entries expire unless seen
// again, and the browser re-queries on a timer. Liveness is decided by shoal's own heartbeats.
import { Bonjour, type Browser, type Service } from "bonjour-service";
import { limits } from "../core/limits.ts";

export interface Announcement {
  nodeId: string;
  /** Empty until this node belongs to a cluster. */
  clusterId: string;
  /** The address peers must use (mDNS also lists docker0 and link-local addresses). */
  address: string;
  port: number;
  version: string;
}

export interface DiscoveredPeer extends Announcement {
  seenAt: number;
}

export interface MdnsOptions {
  announcement: Announcement;
  /** Multicast on this interface address only; absent means the system's default. */
  interfaceAddress?: string | undefined;
  now: () => number;
  onError: (error: Error) => void;
  /** The mDNS responder; bonjour-service's on the interface by default (tests give a twin). */
  responder?: Responder;
}

/** The part of bonjour-service's Bonjour used here. */
export type Responder = Pick<Bonjour, "find" | "publish" | "unpublishAll" | "destroy">;

const serviceType = "shoal";

function txtOf(announcement: Announcement): Record<string, string> {
  return {
    cid: announcement.clusterId,
    nid: announcement.nodeId,
    addr: announcement.address,
    port: String(announcement.port),
    ver: announcement.version,
  };
}

function peerOf(service: Service, seenAt: number): DiscoveredPeer | null {
  const txt = (service.txt ?? {}) as Record<string, unknown>;
  const nodeId = typeof txt.nid === "string" ? txt.nid : "";
  const address = typeof txt.addr === "string" && txt.addr ? txt.addr : service.referer?.address;
  const port = Number(txt.port ?? service.port);
  if (!nodeId || !address || !Number.isInteger(port) || port <= 0) return null;
  const text = (value: unknown) => (typeof value === "string" ? value : "");
  return { nodeId, clusterId: text(txt.cid), address, port, version: text(txt.ver), seenAt };
}

export class MdnsDiscovery {
  private readonly bonjour: Responder;
  private browser: Browser | null = null;
  private service: Service | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Map<string, DiscoveredPeer>();

  constructor(private readonly options: MdnsOptions) {
    // With an interface, multicast-dns also binds to that unicast address and would hear no
    // multicast: bind to every address and choose the interface for membership only.
    const socket = options.interfaceAddress
      ? { interface: options.interfaceAddress, bind: "0.0.0.0" }
      : {};
    this.bonjour =
      options.responder ?? new Bonjour(socket as object, (error: Error) => options.onError(error));
  }

  start(): void {
    this.publish(this.options.announcement);
    this.browse();
    this.timer = setInterval(() => this.requery(), limits.discoveryRequeryMs);
  }

  private browse(): void {
    this.browser = this.bonjour.find({ type: serviceType, protocol: "tcp" }, (service) =>
      this.record(service),
    );
    this.browser.on("txt-update", (service: Service) => this.record(service));
  }

  /** Announces again with new fields, e.g. the cluster id once this node has joined one. */
  announce(announcement: Announcement): void {
    this.options.announcement = announcement;
    if (this.service) this.service.stop?.(() => this.publish(announcement));
    else this.publish(announcement);
  }

  private publish(announcement: Announcement): void {
    this.service = this.bonjour.publish({
      name: `shoal-${announcement.nodeId}`,
      type: serviceType,
      protocol: "tcp",
      port: announcement.port,
      txt: txtOf(announcement),
      disableIPv6: true,
    });
    this.service.on("error", (error: Error) => this.options.onError(error));
  }

  /**
   * Keeps a peer as the newest entry; past `discoveryPeersMax` the oldest is forgotten. An
   * announcement is only an address to try (the join token's CA pin decides), and anyone on the
   * LAN can send them: what they cost is bounded.
   */
  private record(service: Service): void {
    const peer = peerOf(service, this.options.now());
    if (!peer || peer.nodeId === this.options.announcement.nodeId) return;
    this.seen.delete(peer.nodeId);
    this.seen.set(peer.nodeId, peer);
    if (this.seen.size > limits.discoveryPeersMax)
      this.seen.delete(this.seen.keys().next().value ?? "");
  }

  private requery(): void {
    if (!this.browser) return;
    this.expire();
    // The browser keeps every service it heard until a goodbye that a crashed or hostile sender
    // never sends: past the bound it starts afresh, and live peers answer the next query.
    if (this.browser.services.length > limits.discoveryPeersMax) {
      this.browser.stop();
      this.browse();
      return;
    }
    for (const service of this.browser.services) this.record(service);
    this.browser.update();
  }

  private expire(): void {
    const horizon = this.options.now() - limits.discoveryPeerTtlMs;
    for (const [id, peer] of this.seen) if (peer.seenAt < horizon) this.seen.delete(id);
  }

  /** Peers seen recently, newest first; `clusterId` narrows to one cluster. */
  peers(clusterId?: string): DiscoveredPeer[] {
    this.expire();
    return [...this.seen.values()]
      .filter((peer) => clusterId === undefined || peer.clusterId === clusterId)
      .sort((a, b) => b.seenAt - a.seenAt);
  }

  /** Sends the goodbye packet, then closes the socket. */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.browser?.stop();
    return new Promise((resolve) => {
      this.bonjour.unpublishAll(() => this.bonjour.destroy(() => resolve()));
    });
  }
}
