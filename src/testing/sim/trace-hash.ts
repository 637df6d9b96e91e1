// A running 32-bit FNV-1a hash of everything that happens in a simulation, so a test can show
// that one seed always yields the same trace.
export class TraceHash {
  private hash = 0x811c9dc5;

  add(text: string): void {
    let hash = this.hash;
    for (let position = 0; position < text.length; position++) {
      hash ^= text.charCodeAt(position);
      hash = Math.imul(hash, 0x01000193);
    }
    this.hash = hash >>> 0;
  }

  addNumber(value: number): void {
    this.add(String(value));
  }

  hex(): string {
    return this.hash.toString(16).padStart(8, "0");
  }
}

export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let position = 0; position < text.length; position++) {
    hash ^= text.charCodeAt(position);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function bytesHash(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
