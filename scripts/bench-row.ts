// One row of `npm run bench`: a measured figure next to its goal.

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** The goal in words, e.g. ">= 20000 tasks/s". */
  goal: string;
  pass: boolean;
}

/** The `p`th percentile of ascending samples (50 for the median). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

/** The middle of the samples, in any order (the mean of the two middles for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? 0;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? 0) + upper) / 2;
}

/** Formats rows as a plain text table for people. */
export function formatBenchRows(rows: readonly BenchRow[]): string {
  const lines = rows.map((row) => [
    row.name,
    `${formatValue(row.value)} ${row.unit}`,
    row.goal,
    row.pass ? "pass" : "FAIL",
  ]);
  const header = ["benchmark", "value", "goal", "result"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => line[column]?.length ?? 0)),
  );
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd();
  return [render(header), ...lines.map(render)].join("\n");
}

function formatValue(value: number): string {
  if (Number.isInteger(value) || Math.abs(value) >= 100) return Math.round(value).toString();
  return value.toFixed(2);
}
