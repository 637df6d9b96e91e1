// Frames of a peer stream: a 4-byte length and a JSON payload. The stream runs over mutual TLS,
// which already refuses bytes injected, dropped, replayed or reordered on the path; frames only
// mark where one batch of messages ends, and bound how large one may be.

const lengthBytes = 4;

/** Encodes frames for one direction of a stream. */
export class FrameEncoder {
  encode(payload: string): Buffer {
    const body = Buffer.from(payload);
    const header = Buffer.alloc(lengthBytes);
    header.writeUInt32BE(body.length);
    return Buffer.concat([header, body]);
  }
}

export class FrameError extends Error {}

/** Decodes the frames of one direction of a stream. */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly payloadBytesMax: number) {}

  /**
   * Hands on each payload `chunk` completes; throws FrameError at the first frame too large (the
   * frames before it are handed on).
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
    const end = lengthBytes + length;
    // A large frame arrives in many chunks: they are joined once, when all of it is here.
    if (this.bufferedBytes < end) return null;
    const all = this.join();
    const body = all.subarray(lengthBytes, end).toString();
    const rest = all.subarray(end);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return body;
  }

  private join(): Buffer {
    if (this.buffered.length > 1) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0] ?? Buffer.alloc(0);
  }
}
