// One row of `npm run bench`: a measured figure next to its goal.

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  /** The goal in words, e.g. ">= 20000 tasks/s". */
  goal: string;
  pass: boolean;
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
