import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type CliHarness, openCliHarness } from "../testing/cli-harness.ts";
import type { ServiceDetail, ServiceView, TaskDefinitionView, TaskView } from "./client.ts";
import { type AgentOptions, createProgram } from "./program.ts";

let h: CliHarness;

before(async () => {
  h = await openCliHarness();
});
after(() => h.dispose());

const webYaml = `
name: web
replicas: 3
containers:
  - name: httpd
    image: shoal-test/busybox:1
    command: [httpd, -f, -p, "80"]
    ports:
      - container: 80
        host: 0
    env:
      PORT: 80
    memoryMb: 32
    cpu: 0.1
`;

async function ok(args: string[], options = {}) {
  const result = await h.run(args, options);
  assert.equal(result.code, 0, `shoal ${args.join(" ")} failed: ${result.stderr}`);
  return result;
}

describe("shoal service", () => {
  it("creates a service from a YAML file", async () => {
    const result = await ok(["service", "create", "-f", h.file("web.yaml", webYaml)]);
    assert.match(result.stdout, /service web created \(web:1, 3 replicas\)/);
    const service = h.test.log.view().service("web");
    assert.equal(service?.replicas, 3);
  });

  it("lists services as a table and as the API's JSON", async () => {
    const table = await ok(["service", "ls"]);
    const [header, row] = table.stdout.trimEnd().split("\n");
    assert.match(
      header ?? "",
      /^NAME\s+RUNNING\s+PENDING\s+DEFINITION\s+IMAGES\s+INGRESS\s+UPDATED$/,
    );
    assert.match(row ?? "", /^web\s+0\/3\s+\d+\s+web:1\s+shoal-test\/busybox:1\s+-\s+\d+s ago$/);
    const asJson = await ok(["service", "ls", "--json"]);
    const services = JSON.parse(asJson.stdout) as ServiceView[];
    assert.deepEqual(
      services.map((s) => [s.name, s.replicas]),
      [["web", 3]],
    );
    assert.equal(services[0]?.containers[0]?.env.PORT, "80", "YAML numbers in env become strings");
  });

  it("scales a service", async () => {
    const result = await ok(["service", "scale", "web", "1"]);
    assert.equal(result.stdout, "service web scaled to 1\n");
    assert.equal(h.test.log.view().service("web")?.replicas, 1);
  });

  it("refuses a replica count that is not a number as a usage error", async () => {
    const result = await h.run(["service", "scale", "web", "many"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /replicas must be a whole number/);
  });

  it("inspects a service with its tasks", async () => {
    const human = await ok(["service", "inspect", "web"]);
    assert.match(human.stdout, /^name:\s+web$/m);
    assert.match(human.stdout, /^definition:\s+web:1$/m);
    assert.match(human.stdout, /^CONTAINER\s+IMAGE\s+COMMAND/m);
    assert.match(human.stdout, /httpd\s+shoal-test\/busybox:1\s+httpd -f -p 80\s+\?->80\/tcp/);
    assert.match(human.stdout, /^ID\s+SERVICE\s+NODE\s+DESIRED\s+STATE/m);
    const detail = JSON.parse((await ok(["service", "inspect", "web", "--json"])).stdout);
    assert.equal((detail as ServiceDetail).name, "web");
    assert.ok(Array.isArray((detail as ServiceDetail).tasks));
  });

  it("updates a service's containers and replicas from a spec on stdin", async () => {
    const spec = webYaml
      .replace("replicas: 3", "replicas: 2")
      .replace("memoryMb: 32", "memoryMb: 64");
    const result = await ok(["service", "update", "web", "-f", "-"], { stdin: spec });
    assert.match(result.stdout, /service web updated \(web:2, 2 replicas\)/);
  });

  it("refuses an update whose spec names another service", async () => {
    const result = await h.run(["service", "update", "api", "-f", "-"], { stdin: webYaml });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /the spec is for service web, not api/);
  });

  it("shows the server's error code and exits 1 when the API refuses", async () => {
    const duplicate = await h.run(["service", "create", "-f", h.file("again.yaml", webYaml)]);
    assert.equal(duplicate.code, 1);
    assert.equal(duplicate.stderr, "error: a service named web already exists (E_CONFLICT)\n");
    assert.equal(duplicate.stdout, "");
    const bad = h.file("bad.json", JSON.stringify({ name: "x", containers: [{ name: "a" }] }));
    const invalid = await h.run(["service", "create", "-f", bad]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /^error: body\.containers\.0\.image: .* \(E_VALIDATION\)\n$/);
    const missing = await h.run(["service", "inspect", "nope"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\(E_NOT_FOUND\)\n$/);
  });

  it("takes ingress ports from a spec, shows them, and refuses one already taken", async () => {
    const spec = webYaml
      .replace("name: web", "name: front")
      .concat(
        "ingress:\n  - port: 8080\n    containerPort: 80\n    protocol: http\ndrainMs: 2000\n",
      );
    const created = await ok(["service", "create", "-f", h.file("front.yaml", spec)]);
    assert.match(created.stdout, /service front created/);
    const human = await ok(["service", "inspect", "front"]);
    assert.match(human.stdout, /^drain:\s+2000 ms$/m);
    assert.match(human.stdout, /^INGRESS\s+PROTOCOL\s+TARGET\s+HOSTS\s+LISTENING$/m);
    assert.match(human.stdout, /^8080\s+http\s+httpd:80\s+\*\s+0\/1 nodes$/m);
    assert.match(human.stdout, /^warning: node \S+ does not listen on 8080: not reported yet$/m);
    const clash = spec.replace("name: front", "name: back");
    const refused = await h.run(["service", "create", "-f", h.file("back.yaml", clash)]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /ingress port 8080: service front already listens there.*\(E_PORT_CONFLICT\)\n$/,
    );
    assert.equal(h.test.log.view().service("back"), null);
    await ok(["service", "rm", "front"]);
  });

  it("says which file it cannot read", async () => {
    const result = await h.run(["service", "create", "-f", "/nonexistent/spec.yaml"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot read \/nonexistent\/spec\.yaml: no such file/);
  });

  it("removes a service", async () => {
    const result = await ok(["service", "rm", "web"]);
    assert.equal(result.stdout, "service web removed\n");
    assert.equal(h.test.log.view().service("web"), null);
  });
});

describe("shoal run and shoal task", () => {
  let taskId = "";

  it("runs a one-off task with ports, env and a command after --", async () => {
    const args = ["run", "shoal-test/busybox:1", "-p", "8080:80", "-p", "53/udp", "-e", "A=1"];
    const result = await ok([...args, "-e", "B=x=y", "--memory", "16", "--", "sleep", "-x", "60"]);
    assert.match(result.stdout, /^task \S+ \w+ /);
    const response = await h.fetch("http://x/v1/task-definitions/run", {
      headers: { authorization: "Bearer test-api-token" },
    });
    const [definition] = (await response.json()) as TaskDefinitionView[];
    const container = definition?.containers[0];
    assert.equal(container?.name, "busybox");
    assert.deepEqual(container?.command, ["sleep", "-x", "60"]);
    assert.deepEqual(container?.env, { A: "1", B: "x=y" });
    assert.deepEqual(container?.ports, [
      { host: 8080, container: 80, protocol: "tcp" },
      { host: 0, container: 53, protocol: "udp" },
    ]);
    assert.equal(container?.memoryMb, 16);
  });

  it("refuses a malformed -p as a usage error, sending nothing", async () => {
    const before = h.test.log.view().appliedIndex();
    const result = await h.run(["run", "busybox", "-p", "80:http"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /-p 80:http: expected host:container/);
    assert.equal(h.test.log.view().appliedIndex(), before);
  });

  it("lists tasks as a table, filtered, and as JSON", async () => {
    const tasks = JSON.parse((await ok(["task", "ls", "--json"])).stdout) as TaskView[];
    const run = tasks.find((task) => task.service === null);
    assert.ok(run, "the one-off task is listed");
    taskId = run.id;
    const table = await ok(["task", "ls", "--state", run.state]);
    assert.match(
      table.stdout,
      /^ID\s+SERVICE\s+NODE\s+DESIRED\s+STATE\s+PORTS\s+CREATED\s+REASON$/m,
    );
    assert.match(table.stdout, new RegExp(`^${taskId.slice(0, 8)}\\s+run:1\\s`, "m"));
    const none = await ok(["task", "ls", "--service", "nothing-here", "--json"]);
    assert.deepEqual(JSON.parse(none.stdout), []);
  });

  it("inspects a task by an id prefix", async () => {
    const result = await ok(["task", "inspect", taskId.slice(0, 6)]);
    assert.match(result.stdout, new RegExp(`^id:\\s+${taskId}$`, "m"));
    assert.match(result.stdout, /^definition:\s+run:1$/m);
  });

  it("stops a task, and refuses to stop it twice", async () => {
    const result = await ok(["task", "stop", taskId]);
    assert.equal(result.stdout, `task ${taskId} stopping\n`);
    assert.equal(h.test.log.view().task(taskId)?.desired, "stopped");
    const again = await h.run(["task", "stop", taskId]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\(E_CONFLICT\)\n$/);
  });
});

describe("shoal status, node and events", () => {
  it("shows the cluster, nodes and services", async () => {
    const result = await ok(["status"]);
    assert.match(result.stdout, /^cluster:\s+cluster-test$/m);
    assert.match(result.stdout, /^applied index:\s+\d+$/m);
    assert.match(result.stdout, /^NODES\nID\s+NAME\s+ADDRESS\s+STATUS/m);
    assert.match(result.stdout, /^node-1\s+pi\s+127\.0\.0\.1\s+ready/m);
    const asJson = JSON.parse((await ok(["status", "--json"])).stdout);
    assert.equal(asJson.cluster.id, "cluster-test");
    assert.ok(Array.isArray(asJson.services));
  });

  it("lists nodes and inspects one by name or id", async () => {
    assert.match((await ok(["node", "ls"])).stdout, /^node-1\s+pi\s/m);
    assert.match((await ok(["node", "inspect", "pi"])).stdout, /^id:\s+node-1$/m);
    const byId = JSON.parse((await ok(["node", "inspect", "node-1", "--json"])).stdout);
    assert.equal(byId.name, "pi");
    const missing = await h.run(["node", "inspect", "nas"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no node has the id or name nas \(E_NOT_FOUND\)/);
  });

  it("drains, activates and labels a node", async () => {
    assert.match((await ok(["node", "drain", "pi"])).stdout, /^node pi is draining/m);
    assert.match((await ok(["node", "activate", "pi"])).stdout, /^node pi is ready$/m);
    const labelled = await ok(["node", "label", "pi", "zone=desk", "rack=2"]);
    assert.match(labelled.stdout, /labels: zone=desk,rack=2$/m);
    assert.match((await ok(["node", "label", "pi", "rack-"])).stdout, /labels: zone=desk$/m);
    const bad = await h.run(["node", "label", "pi", "zone"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /key=value, or key- to remove it/);
    await ok(["node", "label", "pi", "zone-"]);
  });

  it("prints the event log without following, one line per event", async () => {
    const result = await ok(["events"]);
    const lines = result.stdout.trimEnd().split("\n");
    assert.ok(lines.length >= 4, result.stdout);
    assert.ok(
      lines.some((line) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+service\.created\s+\S/.test(line)),
    );
    const events = (await ok(["events", "--json"])).stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(events.length, lines.length);
    const since = events[1].seq as number;
    const later = (await ok(["events", "--json", "--since", String(since)])).stdout
      .trimEnd()
      .split("\n");
    assert.equal(later.length, events.length - 2);
  });
});

describe("shoal with a bad target", () => {
  it("refuses a wrong token with the server's code", async () => {
    const result = await h.run(["service", "ls"], { env: { SHOAL_API_TOKEN: "wrong" } });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: wrong API token (E_UNAUTHORIZED)\n");
  });

  it("says where it looked when no token is found", async () => {
    const result = await h.run(["service", "ls"], { env: {}, uid: 0 });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /SHOAL_API_TOKEN is not set and \/var\/lib\/shoal\/api\.token does not exist/,
    );
  });

  it("reads the token from --data-dir", async () => {
    const files = { "/srv/shoal/api.token": "test-api-token\n" };
    await ok(["service", "ls", "--data-dir", "/srv/shoal"], { env: {}, files });
  });
});

describe("shoal agent", () => {
  async function agent(args: string[], env: Record<string, string> = {}) {
    const calls: AgentOptions[] = [];
    const startAgent = async (options: AgentOptions) => {
      calls.push(options);
    };
    const result = await h.run(["agent", ...args], { startAgent, env });
    return { ...result, calls };
  }

  it("starts the agent with the parsed flags", async () => {
    const result = await agent([
      "--data-dir",
      "/srv/shoal",
      "--bind",
      "10.0.0.5",
      "--port",
      "7500",
      "--name",
      "pi-1",
      "--labels",
      "zone=garage,disk=ssd",
      "--labels",
      "arch=arm",
      "--docker-host",
      "unix:///run/docker.sock",
      "--pull",
      "never",
      "--pretty",
      "--log-level",
      "debug",
      "--token",
      "shoal2.abc123.abababababababababababababababababababababababababababababababab.Secret_-9",
      "--join",
      "10.0.0.6:7420",
      "--join",
      "pi-2.local:7420",
      "--no-mdns",
      "--leave",
      "--allow-host-path",
      "/srv/media",
      "--allow-host-path",
      "/mnt/usb/",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.calls, [
      {
        token:
          "shoal2.abc123.abababababababababababababababababababababababababababababababab.Secret_-9",
        join: ["10.0.0.6:7420", "pi-2.local:7420"],
        mdns: false,
        newCluster: false,
        leave: true,
        dataDir: "/srv/shoal",
        bind: "10.0.0.5",
        port: 7500,
        name: "pi-1",
        labels: { zone: "garage", disk: "ssd", arch: "arm" },
        dockerHost: "unix:///run/docker.sock",
        pull: "never",
        pretty: true,
        logLevel: "debug",
        allowHostPaths: ["/srv/media", "/mnt/usb"],
        benchPlainHttp: false,
      },
    ]);
  });

  it("takes --bench-plain-http only with SHOAL_BENCH_PLAIN_HTTP=1, and does not list it", async () => {
    const alone = await agent(["--bench-plain-http"], { SHOAL_DATA_DIR: "/data/shoal" });
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /needs SHOAL_BENCH_PLAIN_HTTP=1/);
    assert.deepEqual(alone.calls, []);
    const env = { SHOAL_DATA_DIR: "/data/shoal", SHOAL_BENCH_PLAIN_HTTP: "1" };
    const result = await agent(["--bench-plain-http"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.calls[0]?.benchPlainHttp, true);
    const help = await agent(["--help"], {});
    assert.match(help.stdout + help.stderr, /--allow-host-path/);
    assert.doesNotMatch(help.stdout + help.stderr, /plain/);
  });

  it("fills in the defaults", async () => {
    const result = await agent([], { SHOAL_DATA_DIR: "/data/shoal" });
    assert.equal(result.code, 0, result.stderr);
    const options = result.calls[0];
    assert.equal(options?.dataDir, "/data/shoal");
    assert.equal(options?.bind, "0.0.0.0");
    assert.equal(options?.port, 7420);
    assert.ok(options?.name);
    assert.deepEqual(options?.labels, {});
    assert.equal(options?.dockerHost, undefined);
    assert.equal(options?.pull, "missing");
    assert.equal(options?.pretty, false);
    assert.equal(options?.logLevel, "info");
    assert.equal(options?.benchPlainHttp, false);
  });

  for (const bad of [
    ["--port", "0"],
    ["--port", "70000"],
    ["--port", "http"],
    ["--labels", "zone"],
    ["--labels", "=garage"],
    ["--labels", "zone=a,zone=b"],
    ["--log-level", "loud"],
    ["--pull", "always"],
    ["--bind", "not an address"],
    ["--allow-host-path", "media"],
    ["--unknown"],
  ]) {
    it(`refuses ${bad.join(" ")} with exit 2 and starts nothing`, async () => {
      const result = await agent(bad);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error: /);
      assert.deepEqual(result.calls, []);
    });
  }

  it("takes the join token from SHOAL_TOKEN, and warns that --token shows in ps", async () => {
    const token = `shoal2.abc123.${"ab".repeat(32)}.Secret_-9`;
    const quiet = await agent([], { SHOAL_DATA_DIR: "/data/shoal", SHOAL_TOKEN: token });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.calls[0]?.token, token);
    assert.doesNotMatch(quiet.stderr, /warning/);
    const loud = await agent(["--token", token], { SHOAL_DATA_DIR: "/data/shoal" });
    assert.equal(loud.calls[0]?.token, token);
    assert.match(loud.stderr, /warning: --token shows the join token to every user .* SHOAL_TOKEN/);
    const bad = await agent([], { SHOAL_DATA_DIR: "/data/shoal", SHOAL_TOKEN: "nope" });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /SHOAL_TOKEN: not a shoal join token/);
  });

  it("refuses a join token of a fleet from before TLS, saying how to go on", async () => {
    const result = await agent(["--token", "shoal1.abc123.secret"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /from before TLS \(shoal1\.…\).*re-form the fleet/);
    assert.deepEqual(result.calls, []);
    const short = await agent(["--token", "shoal2.abc123.secret"]);
    assert.match(short.stderr, /shoal2\.<cluster>\.<ca-sha256>\.<secret>/);
  });

  it("says which pull policies exist", async () => {
    const result = await agent(["--pull", "sometimes"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /'sometimes' is invalid\. expected missing or never/);
  });

  it("reports a failure to start as an error", async () => {
    const startAgent = async () => {
      throw new Error("cannot open /srv/shoal/state.db");
    };
    const result = await h.run(["agent"], { startAgent, env: {} });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "error: cannot open /srv/shoal/state.db\n");
  });
});

describe("createProgram().parseAsync", () => {
  it("reports a usage error through process.exitCode instead of throwing", async () => {
    let stderr = "";
    const program = createProgram({
      startAgent: async () => {},
      version: { version: "0.1.0", commit: "abc1234" },
      stdout: { write: () => undefined },
      stderr: { write: (text: string) => (stderr += text) },
    });
    const saved = process.exitCode;
    try {
      await program.parseAsync(["node", "shoal", "agent", "--port", "x"]);
      assert.equal(process.exitCode, 2);
      assert.match(stderr, /^error: option '--port <port>' argument 'x' is invalid/);
    } finally {
      process.exitCode = saved;
    }
  });
});

describe("shoal token and version", () => {
  it("prints the API token from the data dir without an agent", async () => {
    const files = { "/home/pi/.local/share/shoal/api.token": "secret-token\n" };
    const result = await ok(["token", "--api"], { env: {}, files });
    assert.equal(result.stdout, "secret-token\n");
  });

  it("prints the join token by default, and says where it looked when there is none", async () => {
    const files = {
      "/home/pi/.local/share/shoal/join.token": "shoal2.abc.d1.secret\n",
      "/home/pi/.local/share/shoal/ca.pem": "-----BEGIN CERTIFICATE-----\n",
    };
    const result = await ok(["token"], { env: {}, files });
    assert.equal(result.stdout, "shoal2.abc.d1.secret\n");
    const ca = await ok(["token", "--ca"], { env: {}, files });
    assert.equal(ca.stdout, "-----BEGIN CERTIFICATE-----\n");
    const missing = await h.run(["token", "--data-dir", "/nowhere"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\/nowhere\/join\.token does not exist/);
  });

  it("refuses a malformed --token and --join before starting anything", async () => {
    for (const args of [
      ["agent", "--token", "nope"],
      ["agent", "--join", "10.0.0.1"],
      ["agent", "--join", "10.0.0.1:70000"],
      ["agent", "--mdns-interface", "eth0"],
    ]) {
      const result = await h.run(args);
      assert.equal(result.code, 2, args.join(" "));
    }
  });

  it("prints version, commit, runtime and arch", async () => {
    const result = await ok(["version"]);
    assert.match(result.stdout, /^version:\s+0\.1\.0$/m);
    assert.match(result.stdout, /^commit:\s+abc1234$/m);
    assert.match(result.stdout, /^runtime:\s+(node|bun) v\d+/m);
    assert.match(result.stdout, new RegExp(`^arch:\\s+${process.platform}/${process.arch}$`, "m"));
  });
});
