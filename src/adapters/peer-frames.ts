// Frames of a peer stream: a length, a JSON payload and an HMAC over both and the frame's place
// in its stream. Each direction of a stream has its own key (see `streamKeys`), and the place is
// a counter both ends keep, never sent: a frame injected, dropped, replayed, reordered or sent
// back the other way fails its MAC, and the stream ends before its payload is read.
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";

const lengthBytes = 4;
const macBytes = 32;

export interface StreamKeys {
  /** Signs what the connecting node sends. */
  readonly up: Buffer;
  /** Signs what the accepting node answers. */
  readonly down: Buffer;
}

/**
 * The keys of one stream, from the peer key, the nonce of the signed request that opened it and
 * the node that opened it: no two streams share keys, and a frame is bound to its sender.
 */
export function streamKeys(peerKey: Buffer, nonce: string, node: string): StreamKeys {
  const derive = (direction: string) =>
    Buffer.from(
      hkdfSync("sha256", peerKey, nonce, `shoal peer stream v1 ${direction} ${node}`, 32),
    );
  return { up: derive("up"), down: derive("down") };
}

function mac(key: Buffer, seq: bigint, header: Buffer, payload: Buffer): Buffer {
  const place = Buffer.alloc(8);
  place.writeBigUInt64BE(seq);
  return createHmac("sha256", key).update(place).update(header).update(payload).digest();
}

/** Encodes frames for one direction of a stream. */
export class FrameEncoder {
  private seq = 0n;

  constructor(private readonly key: Buffer) {}

  encode(payload: string): Buffer {
    const body = Buffer.from(payload);
    const header = Buffer.alloc(lengthBytes);
    header.writeUInt32BE(body.length);
    const tag = mac(this.key, this.seq, header, body);
    this.seq += 1n;
    return Buffer.concat([header, body, tag]);
  }
}

export class FrameError extends Error {}

/** Decodes the frames of one direction of a stream, checking each before its payload is used. */
export class FrameDecoder {
  private seq = 0n;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(
    private readonly key: Buffer,
    private readonly payloadBytesMax: number,
  ) {}

  /**
   * Hands on each payload `chunk` completes; throws FrameError at the first frame too large or
   * forged (the frames before it were genuine and are handed on).
   */
  push(chunk: Buffer, onPayload: (payload: string) => void): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    for (let payload = this.next(); payload !== null; payload = this.next()) onPayload(payload);
  }

  private next(): string | null {
    if (this.bufferedBytes < lengthBytes) return null;
    if ((this.buffered[0]?.length ?? 0) < lengthBytes) this.join();
    const length = (this.buffered[0] as Buffer).readUInt32BE(0);
    if (length > this.payloadBytesMax) {
      throw new FrameError(`a peer frame of ${length} bytes is over ${this.payloadBytesMax}`);
    }
    const end = lengthBytes + length + macBytes;
    // A large frame arrives in many chunks: they are joined once, when all of it is here.
    if (this.bufferedBytes < end) return null;
    const all = this.join();
    const header = all.subarray(0, lengthBytes);
    const body = all.subarray(lengthBytes, lengthBytes + length);
    const expected = mac(this.key, this.seq, header, body);
    if (!timingSafeEqual(expected, all.subarray(lengthBytes + length, end))) {
      throw new FrameError("a peer frame failed its MAC (forged, replayed or out of order)");
    }
    this.seq += 1n;
    const rest = all.subarray(end);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return body.toString();
  }

  private join(): Buffer {
    if (this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0] ?? Buffer.alloc(0);
  }
}
