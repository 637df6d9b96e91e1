// Reads what tcpdump wrote (classic pcap, Ethernet frames, IPv4 and TCP) into the byte streams of
// each TCP connection's direction, and walks a stream as TLS records: for tests that show what a
// fleet puts on the wire.

export interface TcpStream {
  /** `10.77.0.11:51234>10.77.0.12:7420` */
  name: string;
  bytes: Buffer;
}

interface Segment {
  seq: number;
  payload: Buffer;
}

const ethernetBytes = 14;
const ipv4 = 0x0800;
const tcpProtocol = 6;

/** The TCP payloads of a pcap file, per connection direction, in sequence order. */
export function tcpStreams(pcap: Buffer): TcpStream[] {
  const magic = pcap.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4) throw new Error("not a little-endian classic pcap file");
  if (pcap.readUInt32LE(20) !== 1) throw new Error("not an Ethernet capture");
  const segments = new Map<string, Segment[]>();
  for (let at = 24; at + 16 <= pcap.length; ) {
    const captured = pcap.readUInt32LE(at + 8);
    const frame = pcap.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    const parsed = tcpSegment(frame);
    if (!parsed || parsed.segment.payload.length === 0) continue;
    const list = segments.get(parsed.name) ?? [];
    list.push(parsed.segment);
    segments.set(parsed.name, list);
  }
  return [...segments].map(([name, list]) => ({ name, bytes: assemble(list) }));
}

function tcpSegment(frame: Buffer): { name: string; segment: Segment } | null {
  if (frame.length < ethernetBytes + 20 || frame.readUInt16BE(12) !== ipv4) return null;
  const ip = frame.subarray(ethernetBytes);
  const ipHeader = (ip[0] ?? 0) & 0x0f;
  if (ip[9] !== tcpProtocol) return null;
  const total = ip.readUInt16BE(2);
  const tcp = ip.subarray(ipHeader * 4, total);
  const dataOffset = ((tcp[12] ?? 0) >> 4) * 4;
  const address = (offset: number) => [...ip.subarray(offset, offset + 4)].join(".");
  const name = `${address(12)}:${tcp.readUInt16BE(0)}>${address(16)}:${tcp.readUInt16BE(2)}`;
  return {
    name,
    segment: { seq: tcp.readUInt32BE(4), payload: Buffer.from(tcp.subarray(dataOffset)) },
  };
}

/** Joins segments by sequence number; a retransmission of bytes already placed is skipped. */
function assemble(list: Segment[]): Buffer {
  const start = list[0]?.seq ?? 0;
  const relative = (seq: number) => (seq - start + 2 ** 32) % 2 ** 32;
  const sorted = [...list].sort((a, b) => relative(a.seq) - relative(b.seq));
  const parts: Buffer[] = [];
  let next = 0;
  for (const segment of sorted) {
    const offset = relative(segment.seq);
    const end = offset + segment.payload.length;
    if (end <= next) continue;
    parts.push(segment.payload.subarray(Math.max(0, next - offset)));
    next = end;
  }
  return Buffer.concat(parts);
}

/**
 * Whether `bytes` is a sequence of TLS records (content type 20-23, version 3.x, a length within
 * the record limit); the last record may be cut off where the capture ended.
 */
export function isTlsRecords(bytes: Buffer): { ok: boolean; records: number; at: number } {
  let at = 0;
  let records = 0;
  while (at + 5 <= bytes.length) {
    const type = bytes[at] ?? 0;
    const major = bytes[at + 1];
    const length = bytes.readUInt16BE(at + 3);
    if (type < 20 || type > 23 || major !== 3 || length > 16384 + 2048) {
      return { ok: false, records, at };
    }
    at += 5 + length;
    records += 1;
  }
  return { ok: true, records, at };
}
