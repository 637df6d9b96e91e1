// Human output: aligned tables, short ids, relative times. JSON output never passes through here.
import type { TaskContainerPort } from "../core/types.ts";

/** Ids are 12 characters; 8 tell tasks apart in any fleet a table can show. */
export const shortIdLength = 8;

export function shortId(id: string | null): string {
  return id ? id.slice(0, shortIdLength) : "-";
}

/** Aligned columns separated by two spaces; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, column) =>
    Math.max(...all.map((row) => (row[column] ?? "").length)),
  );
  const lines = all.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
  return `${lines.join("\n")}\n`;
}

/** "3s ago", "5m ago", "2h ago", "4d ago"; a time ahead of ours (clock skew) reads "just now". */
export function ago(at: number | null, now: number): string {
  if (at === null) return "-";
  const seconds = Math.floor((now - at) / 1000);
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** A local wall-clock time, to the second, as event logs read best. */
export function clockTime(at: number): string {
  const date = new Date(at);
  const pad = (value: number) => String(value).padStart(2, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `8080->80/tcp`, as Docker prints published ports; an unassigned host port reads `?`. */
export function portText(
  port: TaskContainerPort | { container: number; host?: number; protocol: string },
) {
  const host = port.host === null || port.host === undefined || port.host === 0 ? "?" : port.host;
  return `${host}->${port.container}/${port.protocol}`;
}

export function labelsText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "-" : entries.map(([key, value]) => `${key}=${value}`).join(",");
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** `key:  value` lines with the values aligned, for inspect output. */
export function fields(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([key]) => key.length)) + 1;
  return pairs.map(([key, value]) => `${`${key}:`.padEnd(width)}  ${value}\n`).join("");
}
