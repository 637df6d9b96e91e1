// install.sh through the real `curl | sh` path, from scripts/serve-release.sh on 127.0.0.1, into
// a scratch root (SHOAL_ROOT) where no systemd runs: the binary lands and runs, a corrupted
// SHA256SUMS is refused, a second run upgrades in place and keeps the agent's arguments, and
// --uninstall leaves only the data (--purge not even that). Then the same inside a clean Debian
// root (debootstrap'd once into a cache, copied fresh for each run) in a network namespace with
// only loopback, where Docker cannot be installed and a user without root or sudo is stopped.
// Needs root.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { waitFor } from "../../src/testing/wait.ts";

/** SHA256SUMS with every digest's first digit changed (to another one, so it never matches). */
function corrupted(sums: string): string {
  return sums.replace(/^./gm, (digit) => (digit === "0" ? "1" : "0"));
}

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const port = 8791;
const site = `http://127.0.0.1:${port}`;
const scratch = mkdtempSync(join(tmpdir(), "shoal-install-"));
// The installed binary unpacks its libSQL addon into TMPDIR and leaves it there: into this test's
// own folder, removed at the end, rather than /tmp.
process.env.TMPDIR = scratch;
let server: ChildProcess;

before(async () => {
  server = spawn("bash", [join(root, "scripts", "serve-release.sh"), String(port)], {
    stdio: "ignore",
    detached: true,
  });
  await waitFor(
    "the release server",
    async () => {
      const response = await fetch(`${site}/install.sh`).catch(() => null);
      return response?.ok === true;
    },
    300_000,
  );
});

after(() => {
  // The server's process group: bash and the python it runs, which removes its folder on exit.
  if (server.pid) process.kill(-server.pid, "SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
});

/** `curl -fsSL SITE/install.sh | sh -s -- ARGS` into `into`, as a user runs it. */
async function curlSh(into: string, args: string[], url = `${site}/releases`) {
  const script = `curl -fsSL ${site}/install.sh | sh -s -- ${args.join(" ")}`;
  const env = {
    ...process.env,
    SHOAL_ROOT: into,
    SHOAL_DOWNLOAD_URL: url,
    SHOAL_INSTALL_DOCKER: "0",
  };
  return run("sh", ["-c", script], { env, timeout: 120_000 }).then(
    (result) => ({ code: 0, ...result }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

/**
 * What `systemd-analyze verify` says of a unit (nothing when all is well). systemd only warns of
 * a line it ignores, so its words are the verdict. It also checks that ExecStart's binary is
 * there, so the unit's path is pointed at the built one; the path itself is asserted above.
 */
async function verifyUnit(unit: string): Promise<string> {
  const dir = mkdtempSync(join(scratch, "unit-"));
  const path = join(dir, "shoal.service");
  const built = join(root, "dist", "shoal-linux-x64");
  writeFileSync(path, unit.replace("/usr/local/bin/shoal", built));
  const result = await run("systemd-analyze", ["verify", "--man=no", path]).catch(
    (error: { stdout: string; stderr: string }) => error,
  );
  return `${result.stdout}${result.stderr}`.trim();
}

describe("install.sh", () => {
  const into = join(scratch, "root");

  it("installs the binary, its environment and its unit, and the binary runs", async () => {
    const result = await curlSh(into, ["--token", "shoal1.abc.def", "--labels", "zone=desk"]);
    assert.equal(result.code, 0, result.stderr);
    const binary = join(into, "usr/local/bin/shoal");
    const { stdout } = await run(binary, ["version"]);
    assert.match(stdout, /^arch:\s+linux\/x64$/m);
    const env = join(into, "etc/shoal/env");
    // The token goes to the agent through its environment: `ps` shows no token.
    assert.equal(
      readFileSync(env, "utf8"),
      'SHOAL_TOKEN="shoal1.abc.def"\nSHOAL_AGENT_ARGS="--labels zone=desk"\n',
    );
    assert.equal(statSync(env).mode & 0o777, 0o600, "the token is readable by root only");
    const unit = readFileSync(join(into, "etc/systemd/system/shoal.service"), "utf8");
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/shoal agent \$SHOAL_AGENT_ARGS$/m);
    assert.match(unit, /^Restart=always$/m);
    assert.match(unit, /^After=network-online\.target docker\.service$/m);
    assert.match(unit, /^CacheDirectory=shoal$/m);
    assert.match(unit, /^Environment=TMPDIR=\/var\/cache\/shoal$/m);
    assert.match(result.stderr, /no systemd here: run the agent yourself/);
  });

  it("writes a unit that systemd reads without a complaint", async () => {
    const unit = readFileSync(join(into, "etc/systemd/system/shoal.service"), "utf8");
    const issues = await verifyUnit(unit.replace("Restart=always", "Restart=sometimes"));
    assert.match(issues, /Failed to parse service restart specifier/, "the check bites");
    assert.equal(await verifyUnit(unit), "");
  });

  it("upgrades in place on a second run, keeping the agent's arguments", async () => {
    const result = await curlSh(into, []);
    assert.equal(result.code, 0, result.stderr);
    const env = readFileSync(join(into, "etc/shoal/env"), "utf8");
    assert.match(env, /^SHOAL_TOKEN="shoal1\.abc\.def"$/m);
  });

  it("refuses a binary whose checksum does not match, installing nothing", async () => {
    const bad = join(scratch, "bad", "latest");
    mkdirSync(bad, { recursive: true });
    const sums = readFileSync(join(root, "dist", "SHA256SUMS"), "utf8");
    writeFileSync(join(bad, "SHA256SUMS"), corrupted(sums));
    writeFileSync(
      join(bad, "shoal-linux-x64"),
      readFileSync(join(root, "dist", "shoal-linux-x64")),
    );
    const fresh = join(scratch, "fresh");
    const result = await curlSh(fresh, [], `file://${join(scratch, "bad")}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /checksum mismatch for shoal-linux-x64/);
    assert.equal(existsSync(fresh), false);
  });

  it("uninstalls, keeping the data unless purged", async () => {
    mkdirSync(join(into, "var/lib/shoal"), { recursive: true });
    writeFileSync(join(into, "var/lib/shoal/state.db"), "");
    mkdirSync(join(into, "var/cache/shoal"), { recursive: true });
    const kept = await curlSh(into, ["--uninstall"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal(existsSync(join(into, "usr/local/bin/shoal")), false);
    assert.equal(existsSync(join(into, "etc/systemd/system/shoal.service")), false);
    assert.equal(existsSync(join(into, "etc/shoal")), false);
    assert.equal(existsSync(join(into, "var/cache/shoal")), false);
    assert.equal(existsSync(join(into, "var/lib/shoal/state.db")), true);
    const purged = await curlSh(into, ["--uninstall", "--purge"]);
    assert.equal(purged.code, 0, purged.stderr);
    assert.equal(existsSync(join(into, "var/lib/shoal")), false);
  });

  it("refuses an unknown option with a clear message", async () => {
    const result = await curlSh(join(scratch, "none"), ["--frobnicate"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unknown option: --frobnicate/);
  });
});

/** A pristine Debian 12 root with curl, made once by debootstrap and kept for later runs. */
const pristineRoot = "/var/cache/shoal-test/bookworm-root";

async function cleanRoot(): Promise<string> {
  if (!existsSync(join(pristineRoot, "usr/bin/curl"))) {
    rmSync(pristineRoot, { recursive: true, force: true });
    mkdirSync(pristineRoot, { recursive: true });
    const args = ["--variant=minbase", "--include=curl,ca-certificates", "bookworm", pristineRoot];
    await run("debootstrap", [...args, "http://deb.debian.org/debian"], { timeout: 600_000 });
  }
  const copy = join(scratch, "debian");
  await run("cp", ["-a", pristineRoot, copy]);
  return copy;
}

describe("install.sh in a clean Debian root with only loopback", () => {
  it("installs, refuses a bad checksum, upgrades and uninstalls, all through curl | sh", async () => {
    const debian = await cleanRoot();
    const siteDir = join(scratch, "site");
    mkdirSync(join(siteDir, "releases"), { recursive: true });
    await run("cp", [join(root, "install.sh"), siteDir]);
    await run("cp", ["-r", join(root, "dist"), join(siteDir, "releases", "latest")]);
    const bad = join(siteDir, "bad", "latest");
    mkdirSync(bad, { recursive: true });
    await run("cp", [join(root, "dist", "shoal-linux-x64"), bad]);
    const sums = readFileSync(join(root, "dist", "SHA256SUMS"), "utf8");
    writeFileSync(join(bad, "SHA256SUMS"), corrupted(sums));
    const script = join(root, "test", "e2e", "install-root.sh");
    const result = await run(
      "unshare",
      ["--net", "--mount", "--fork", "bash", script, debian, siteDir, String(port + 1)],
      { timeout: 300_000 },
    ).catch((error: { stdout: string; stderr: string }) => error);
    const lines = result.stdout.trim().split("\n");
    assert.deepEqual(
      lines,
      [
        "ok: nothing outside loopback answers",
        "ok: without root or sudo it stops and says why",
        "ok: the binary lands and runs",
        "ok: Docker could not be installed, and it says so",
        "ok: the unit and the env are written, and it says how to run without systemd",
        "ok: a second run upgrades in place and keeps the arguments and the data",
        "ok: a corrupted SHA256SUMS is refused and changes nothing",
        "ok: --uninstall leaves only the data",
        "ok: --purge removes the data too",
      ],
      result.stderr,
    );
  });
});
