// An incremental parser for server-sent events: bytes arrive in arbitrary chunks, events leave
// whole. Only what /v1/events sends matters here: `id:` and `data:` fields, ":" comments.
import { ShoalError } from "../core/errors.ts";

export interface SseMessage {
  id: string | null;
  data: string;
}

/** A line longer than this is a broken or hostile stream, not an event. */
export const sseLineBytesMax = 1024 * 1024;

export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private data: string[] = [];

  /** Feeds a decoded chunk; returns the messages it completed. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const messages: SseMessage[] = [];
    let newline = this.buffer.search(/\r\n|\r|\n/);
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      const message = this.line(line);
      if (message) messages.push(message);
      newline = this.buffer.search(/\r\n|\r|\n/);
    }
    if (this.buffer.length > sseLineBytesMax) {
      throw new ShoalError("E_INTERNAL", "the event stream sent a line longer than 1 MiB");
    }
    return messages;
  }

  private line(line: string): SseMessage | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const rawValue = colon < 0 ? "" : line.slice(colon + 1);
    const value = rawValue.startsWith(" ") ? rawValue.slice(1) : rawValue;
    if (field === "data") this.data.push(value);
    if (field === "id") this.id = value;
    return null;
  }

  private dispatch(): SseMessage | null {
    // A blank line after comments alone carries no event.
    if (this.data.length === 0) return null;
    const message = { id: this.id, data: this.data.join("\n") };
    this.data = [];
    return message;
  }
}
