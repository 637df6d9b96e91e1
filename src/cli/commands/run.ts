// `shoal run IMAGE [-p ...] [-e ...] [-- command...]`: a one-off task of one container, placed
// by the scheduler like any other, as `docker run -d` would start it on one machine.
import type { Command } from "commander";
import type { PortMapping } from "../../core/types.ts";
import { type CliContext, clientFor, printJson, usageError } from "../context.ts";
import { portText } from "../format.ts";
import { collect, guard, parsePositive, withApiOptions } from "./shared.ts";

interface RunOptions {
  dataDir?: string;
  json?: boolean;
  publish: string[];
  env: string[];
  name?: string;
  cpu?: number;
  memory?: number;
}

export function registerRun(program: Command, context: CliContext): void {
  withApiOptions(program.command("run <image> [command...]"))
    .description("run a one-off task of one container (a command goes after --)")
    .option(
      "-p, --publish <host:container[/udp]>",
      "publish a port; 80 or 0:80 picks a free host port",
      collect,
      [],
    )
    .option(
      "-e, --env <KEY=VALUE>",
      "set an environment variable (KEY alone takes ours)",
      collect,
      [],
    )
    .option("--name <name>", "the container's name (default: from the image)")
    .option("--cpu <cpus>", "cpus to reserve, e.g. 0.5", parsePositive)
    .option("--memory <mb>", "memory to reserve and limit, in MB", parsePositive)
    .action(
      guard(context, async (image: string, command: string[], options: RunOptions) => {
        const container = {
          name: options.name ?? containerNameFor(image),
          image,
          ...(command.length > 0 ? { command } : {}),
          env: parseEnv(options.env, context.system.env),
          ports: options.publish.map(parsePort),
          ...(options.cpu === undefined ? {} : { cpu: options.cpu }),
          ...(options.memory === undefined ? {} : { memoryMb: options.memory }),
        };
        const task = await clientFor(context, options).runTask({
          family: "run",
          containers: [container],
        });
        if (options.json) return printJson(context, task);
        const where = task.nodeName ? `on ${task.nodeName}` : "waiting for a node";
        const ports = task.containers.flatMap((c) => c.ports.map(portText)).join(",");
        context.out.write(`task ${task.id} ${task.state} ${where}${ports ? ` ${ports}` : ""}\n`);
      }),
    );
}

/** `shoal-test/busybox:1` -> `busybox`: a container name the API accepts. */
export function containerNameFor(image: string): string {
  const withoutDigest = image.split("@")[0] ?? image;
  const last = withoutDigest.split("/").pop() ?? withoutDigest;
  const base = (last.split(":")[0] ?? last).toLowerCase();
  const cleaned = base.replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  return cleaned.slice(0, 63).replace(/-+$/, "") || "main";
}

/** `8080:80`, `8080:80/udp`, `80` or `0:80` (a free host port). */
export function parsePort(text: string): PortMapping {
  const match = /^(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(text);
  const host = match?.[1] === undefined ? 0 : Number(match[1]);
  const container = Number(match?.[2]);
  if (!match || container < 1 || container > 65535 || host > 65535) {
    throw usageError(`-p ${text}: expected host:container[/udp] with ports up to 65535`);
  }
  return { host, container, protocol: match[3] === "udp" ? "udp" : "tcp" };
}

export function parseEnv(pairs: string[], ours: Record<string, string | undefined>) {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    const key = equals < 0 ? pair : pair.slice(0, equals);
    const value = equals < 0 ? ours[key] : pair.slice(equals + 1);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw usageError(`-e ${pair}: expected KEY=VALUE`);
    if (value === undefined) throw usageError(`-e ${key}: ${key} is not set here`);
    env[key] = value;
  }
  return env;
}
