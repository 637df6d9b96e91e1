// Layering is code, not convention: the pure layers never touch the clock, randomness, timers,
// the network or files, and imports flow one way (core <- state, raft, scheduler <- cluster,
// agent, api <- cli, main; adapters implement ports). Every file sits in a layer: a folder no rule
// names would escape them all. And no module of the release binary awaits at its top level: Bun
// then silently ignores the binary's bytecode, and the agent parses its bundle at every start and
// idles about 9 MB larger.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";

const srcRoot = join(import.meta.dirname, "..", "src");

/** The layers the composition root and the test helpers see: all of them but each other. */
const releaseLayers = ["core", "state", "raft", "scheduler", "cluster", "agent", "api", "adapters"];

const allowedImports: Record<string, readonly string[]> = {
  core: ["core"],
  state: ["core", "state"],
  raft: ["core", "raft"],
  scheduler: ["core", "scheduler"],
  // The cluster room: what a node does as a member; the world reaches it through its ports.
  cluster: ["core", "state", "raft", "scheduler", "cluster"],
  agent: ["core", "state", "raft", "scheduler", "agent"],
  api: ["core", "state", "raft", "scheduler", "api"],
  adapters: releaseLayers,
  cli: ["core", "state", "api", "cli"],
  testing: [...releaseLayers, "cli", "testing"],
  main: [...releaseLayers, "cli", "main"],
};

/**
 * Where a module names another: `from "…"` (an import or a re-export), a side-effect
 * `import "…"` and a dynamic `import("…")`. `specifier` is a pattern; a group in it is group 1.
 */
function importOf(specifier: string, flags = ""): RegExp {
  return new RegExp(String.raw`(?:\bfrom|\bimport)\s*\(?\s*["']${specifier}["']`, flags);
}

const pureLayers = new Set(["core", "state", "raft", "scheduler"]);
/** Layers that reach the clock, timers, randomness and I/O only through ports (and twins). */
const portBound = new Set([...pureLayers, "cluster"]);
const impureUses: [RegExp, string][] = [
  [
    importOf(String.raw`(?:node:)?(?:fs|fs\/promises|net|http|https|dgram|child_process|os)`),
    "imports I/O",
  ],
  [/\bDate\.now\s*\(/, "reads the clock"],
  [/\bnew Date\s*\(\s*\)/, "reads the clock"],
  [/\bperformance\.now\s*\(/, "reads the clock"],
  [/\bMath\.random\s*\(/, "uses randomness"],
  [/\b(setTimeout|setInterval|setImmediate)\s*\(/, "uses timers"],
  [/\bfetch\s*\(/, "uses the network"],
  [/\bcrypto\.(randomUUID|getRandomValues)\s*\(/, "uses randomness"],
  [/\bprocess\.hrtime\b/, "reads the clock"],
];
/** core/ids.ts makes ids for proposers; the layers that apply and plan only receive them. */
const idMaking: [RegExp, string][] = [
  [importOf(String.raw`(?:\.\.\/)+core\/ids\.ts`), "makes ids"],
  [importOf("nanoid"), "makes ids"],
];

/** The layer of a path relative to src/: its first folder, or "main" for top-level files. */
function layerOf(path: string): string {
  return path.includes("/") ? (path.split("/")[0] ?? "") : "main";
}

/** Returns what is wrong with one source file at `path` (relative to src/); empty when tidy. */
export function layeringProblems(path: string, source: string): string[] {
  const layer = layerOf(path);
  const problems: string[] = [];
  if (portBound.has(layer)) {
    const rules =
      pureLayers.has(layer) && layer !== "core" ? [...impureUses, ...idMaking] : impureUses;
    for (const [pattern, what] of rules) if (pattern.test(source)) problems.push(what);
  }
  const allowed = allowedImports[layer];
  // A folder no rule names would escape every rule.
  if (!allowed) return [...problems, "is in no layer"];
  for (const match of source.matchAll(importOf(String.raw`(\.[^"']+)`, "g"))) {
    const target = normalize(join(dirname(path), match[1] ?? ""));
    if (target.startsWith("..")) continue;
    const targetLayer = layerOf(target);
    if (!allowed.includes(targetLayer)) problems.push(`imports ${targetLayer}`);
  }
  return problems;
}

/** The lines (1-based) of `await`s outside any function in a module's source. */
export function topLevelAwaits(source: string): number[] {
  const file = ts.createSourceFile("module.ts", source, ts.ScriptTarget.Latest, true);
  const lines: number[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node)) return;
    const awaits =
      ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier !== undefined);
    if (awaits) lines.push(file.getLineAndCharacterOfPosition(node.getStart()).line + 1);
    ts.forEachChild(node, visit);
  };
  visit(file);
  return lines;
}

/** Files at the top of src/ that belong in a layer: everything but the entry and its version. */
export function strayTopLevel(names: readonly string[]): string[] {
  return names.filter((name) => name !== "main.ts" && name !== "version.ts");
}

/** Folders at the top of src/ that are no layer (a file in one would escape every rule). */
export function strayFolders(names: readonly string[]): string[] {
  return names.filter((name) => name === "main" || allowedImports[name] === undefined);
}

/** Modules that are not in the release binary: test helpers and fixtures. */
function inRelease(path: string): boolean {
  return !path.startsWith("testing/") && !path.includes("/fixtures/");
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

describe("tidy", () => {
  it("keeps every layer to its imports, and the pure layers pure", () => {
    const problems: string[] = [];
    for (const file of sourceFiles(srcRoot)) {
      const path = relative(srcRoot, file);
      for (const problem of layeringProblems(path, readFileSync(file, "utf8"))) {
        problems.push(`${path} ${problem}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it("keeps nothing at the top of src/ but main.ts and version.ts", () => {
    const topLevel = readdirSync(srcRoot, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name);
    assert.deepEqual(strayTopLevel(topLevel), []);
  });

  it("keeps no folder at the top of src/ but the layers'", () => {
    const folders = readdirSync(srcRoot, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    assert.deepEqual(strayFolders(folders), []);
  });

  it("keeps top-level await out of the release binary's modules", () => {
    const found = sourceFiles(srcRoot)
      .map((file) => relative(srcRoot, file))
      .filter(inRelease)
      .flatMap((path) => {
        const lines = topLevelAwaits(readFileSync(join(srcRoot, path), "utf8"));
        return lines.map((line) => `${path}:${line}`);
      });
    assert.deepEqual(found, []);
  });

  it("finds top-level awaits, and only those", () => {
    const source = [
      "const a = await load();",
      "for await (const x of xs) use(x);",
      "async function f() { await g(); }",
      "const h = async () => { for await (const y of ys) use(y); };",
      "class C { async m() { await this.n(); } }",
      "if (main) { void program.parseAsync(argv); }",
      "if (main) { await program.parseAsync(argv); }",
    ].join("\n");
    assert.deepEqual(topLevelAwaits(source), [1, 2, 7]);
    assert.equal(inRelease("adapters/fixtures/propose-loop.ts"), false);
    assert.equal(inRelease("testing/lab.ts"), false);
    assert.equal(inRelease("main.ts"), true);
  });

  it("bites on known-bad sources", () => {
    assert.deepEqual(layeringProblems("state/a.ts", 'import { x } from "../adapters/libsql.ts";'), [
      "imports adapters",
    ]);
    assert.deepEqual(layeringProblems("raft/a.ts", "const t = Date.now();"), ["reads the clock"]);
    assert.deepEqual(layeringProblems("scheduler/a.ts", "const r = Math.random();"), [
      "uses randomness",
    ]);
    assert.deepEqual(layeringProblems("state/a.ts", 'import { readFileSync } from "node:fs";'), [
      "imports I/O",
    ]);
    assert.deepEqual(layeringProblems("raft/a.ts", "setTimeout(() => {}, 1);"), ["uses timers"]);
    assert.deepEqual(layeringProblems("core/a.ts", 'import { a } from "../state/db.ts";'), [
      "imports state",
    ]);
    assert.deepEqual(
      layeringProblems("api/routes/a.ts", 'import { a } from "../../cli/program.ts";'),
      ["imports cli"],
    );
    assert.deepEqual(layeringProblems("scheduler/a.ts", 'import { b } from "./b.ts";'), []);
    assert.deepEqual(
      layeringProblems("cluster/a.ts", 'import { x } from "../adapters/peer-client.ts";'),
      ["imports adapters"],
    );
    assert.deepEqual(layeringProblems("cluster/a.ts", 'import { x } from "../api/context.ts";'), [
      "imports api",
    ]);
    assert.deepEqual(layeringProblems("api/a.ts", 'import { x } from "../cluster/status.ts";'), [
      "imports cluster",
    ]);
    assert.deepEqual(layeringProblems("cluster/a.ts", 'import { x } from "../raft/types.ts";'), []);
    assert.deepEqual(layeringProblems("cluster/a.ts", "setInterval(() => {}, 1);"), [
      "uses timers",
    ]);
    assert.deepEqual(layeringProblems("state/a.ts", 'import { newId } from "../core/ids.ts";'), [
      "makes ids",
    ]);
    assert.deepEqual(layeringProblems("raft/a.ts", "const id = crypto.randomUUID();"), [
      "uses randomness",
    ]);
    assert.deepEqual(layeringProblems("state/a.ts", "const t = process.hrtime.bigint();"), [
      "reads the clock",
    ]);
  });

  it("bites on side-effect and dynamic imports", () => {
    // [file, source, problems]; words in a string or a comment are no import.
    const cases: [string, string, string[]][] = [
      ["state/a.ts", 'import "../adapters/libsql.ts";', ["imports adapters"]],
      [
        "cluster/a.ts",
        'const m = await import("../adapters/peer-client.ts");',
        ["imports adapters"],
      ],
      ["raft/a.ts", 'const fs = await import("node:fs");', ["imports I/O"]],
      ["raft/a.ts", 'import "node:net";', ["imports I/O"]],
      ["state/a.ts", 'void import("../core/ids.ts");', ["makes ids"]],
      ["cluster/a.ts", 'const s = "imported from ../adapters";', []],
      ["cluster/a.ts", 'import("./rounds.ts");', []],
    ];
    for (const [file, source, problems] of cases) {
      assert.deepEqual(layeringProblems(file, source), problems, `${file}: ${source}`);
    }
  });

  it("bites on a folder that is no layer", () => {
    assert.deepEqual(layeringProblems("misc/a.ts", "export const a = 1;"), ["is in no layer"]);
    assert.deepEqual(layeringProblems("misc/deep/a.ts", 'import "../../core/limits.ts";'), [
      "is in no layer",
    ]);
    assert.deepEqual(strayFolders(["core", "misc", "testing", "main", "cluster"]), [
      "misc",
      "main",
    ]);
  });
});
