// `npm run build` (run by Bun): one self-contained binary per target with `bun build --compile`,
// and dist/SHA256SUMS. libsql picks its native addon with a require built from the platform's
// name, which a compiled binary cannot follow; a plugin rewrites that require into a static one of
// the target's addon, so each binary embeds its own. Addons of other architectures than this
// machine's are fetched at libsql's own version with `npm pack` (npm ci installs only this one).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gitCommit } from "../src/version.ts";

// The part of Bun's build API used here, typed locally: Bun's own types would change the globals
// of the whole Node program that `tsc` checks.
interface BunPlugin {
  name: string;
  setup(build: {
    onLoad(
      options: { filter: RegExp },
      load: (args: { path: string }) => { contents: string; loader: "js" },
    ): void;
  }): void;
}
declare const Bun: {
  build(options: {
    entrypoints: string[];
    compile: { target: string; outfile: string };
    minify: boolean;
    bytecode: boolean;
    format: "esm";
    sourcemap: "none";
    external: string[];
    define: Record<string, string>;
    plugins: BunPlugin[];
  }): Promise<{ success: boolean; logs: unknown[] }>;
};

interface Target {
  /** Bun's compile target. */
  bun: string;
  /** libsql's addon package suffix. */
  addon: string;
  outfile: string;
}

const root = join(import.meta.dirname, "..");
const dist = join(root, "dist");
const addonCache = join(root, ".build", "addons");

const targets: Target[] = [
  { bun: "bun-linux-x64", addon: "linux-x64-gnu", outfile: "shoal-linux-x64" },
  { bun: "bun-linux-arm64", addon: "linux-arm64-gnu", outfile: "shoal-linux-arm64" },
];

function libsqlVersion(): string {
  const manifest = JSON.parse(readFileSync(join(root, "node_modules/libsql/package.json"), "utf8"));
  return manifest.version as string;
}

/** The addon of `target` at libsql's version: the installed one, or one fetched into a cache. */
function addonPath(target: Target, version: string): string {
  const installed = join(root, "node_modules/@libsql", target.addon, "index.node");
  if (existsSync(installed)) return installed;
  const dir = join(addonCache, `${target.addon}-${version}`);
  const cached = join(dir, "package", "index.node");
  if (existsSync(cached)) return cached;
  mkdirSync(dir, { recursive: true });
  const name = `@libsql/${target.addon}@${version}`;
  const tarball = execFileSync("npm", ["pack", name, "--silent", "--pack-destination", dir], {
    encoding: "utf8",
  }).trim();
  execFileSync("tar", ["-xzf", join(dir, tarball), "-C", dir]);
  if (!existsSync(cached)) throw new Error(`${name} has no index.node`);
  return cached;
}

/** Rewrites libsql's platform-named require into a static require of one addon file. */
function libsqlAddonPlugin(addon: string): BunPlugin {
  return {
    name: "libsql-static-addon",
    setup(build) {
      build.onLoad({ filter: /[\\/]libsql[\\/]index\.js$/ }, ({ path }) => {
        const source = readFileSync(path, "utf8");
        const dynamic = /return require\(`@libsql\/\$\{target\}`\);/;
        if (!dynamic.test(source)) throw new Error(`libsql's loader changed: ${path}`);
        const contents = source.replace(dynamic, `return require(${JSON.stringify(addon)});`);
        return { contents, loader: "js" };
      });
    },
  };
}

/**
 * docker-modem loads ssh2 for `ssh://` engines, which shoal refuses (`--docker-host` is a unix
 * socket or TCP): its SSH agent is left out. Loading ssh2 costs about 25 MB under Bun, and an
 * idle agent about 5 MB of resident memory.
 */
function noSshPlugin(): BunPlugin {
  return {
    name: "docker-modem-without-ssh",
    setup(build) {
      build.onLoad({ filter: /[\\/]docker-modem[\\/]lib[\\/]ssh\.js$/ }, () => ({
        contents:
          'module.exports = () => { throw new Error("shoal reaches Docker over a unix socket or TCP, not SSH"); };',
        loader: "js",
      }));
    },
  };
}

async function buildTarget(target: Target, version: string, commit: string): Promise<void> {
  const outfile = join(dist, target.outfile);
  const result = await Bun.build({
    entrypoints: [join(root, "src/main.ts")],
    compile: { target: target.bun, outfile },
    minify: true,
    // Precompiled bytecode: the agent neither parses its 1.4 MB bundle at start nor keeps the
    // parser's pages and the parsed functions resident. Here it took the cold start from about
    // 900 to 720 ms and the idle resident memory from about 85 to 77 MB. It needs ESM output and
    // no top-level await in the bundle: with one, the build succeeds but Bun silently runs the
    // source instead, so test/tidy.test.ts refuses one in shoal's modules.
    bytecode: true,
    format: "esm",
    sourcemap: "none",
    // ssh2's optional addons, in case anything still reached ssh2 past noSshPlugin: it loads
    // them in a try/catch, and shoal needs neither.
    external: ["cpu-features", "*/sshcrypto.node"],
    define: { "process.env.SHOAL_COMMIT": JSON.stringify(commit) },
    plugins: [libsqlAddonPlugin(addonPath(target, version)), noSshPlugin()],
  });
  if (!result.success) {
    for (const message of result.logs) console.error(message);
    throw new Error(`building ${target.outfile} failed`);
  }
  console.log(`built dist/${target.outfile}`);
}

function writeSums(): void {
  const lines = targets.map((target) => {
    const digest = createHash("sha256").update(readFileSync(join(dist, target.outfile)));
    return `${digest.digest("hex")}  ${target.outfile}`;
  });
  writeFileSync(join(dist, "SHA256SUMS"), `${lines.join("\n")}\n`);
  console.log("wrote dist/SHA256SUMS");
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const version = libsqlVersion();
const commit = gitCommit();
for (const target of targets) await buildTarget(target, version, commit);
writeSums();
