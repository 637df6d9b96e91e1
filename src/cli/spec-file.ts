// Reads a service spec from a YAML or JSON file, or stdin with `-f -`. The server validates the
// fields and names the path of a bad one; here only the file itself is checked.
import { readFileSync, statSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ShoalError } from "../core/errors.ts";
import { limits } from "../core/limits.ts";
import type { CliContext } from "./context.ts";

export async function readSpecFile(
  path: string,
  context: CliContext,
): Promise<Record<string, unknown>> {
  const text = path === "-" ? await context.readStdin() : readFromDisk(path);
  const where = path === "-" ? "stdin" : path;
  const value = parseSpecText(text, where, path.endsWith(".json"));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ShoalError("E_VALIDATION", `${where}: a spec is a mapping with name and containers`);
  }
  return stringifyEnv(value as Record<string, unknown>);
}

function readFromDisk(path: string): string {
  try {
    // The API refuses bodies over its limit, so a larger file is refused before it is read.
    if (statSync(path).size > limits.requestBodyBytesMax) {
      throw new ShoalError("E_BODY_TOO_LARGE", `${path} is larger than 1 MiB`);
    }
    return readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof ShoalError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new ShoalError("E_NOT_FOUND", `cannot read ${path}: ${reason}`, { cause: error });
  }
}

function parseSpecText(text: string, where: string, jsonOnly: boolean): unknown {
  try {
    return jsonOnly ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ShoalError(
      "E_VALIDATION",
      `${where} is not valid ${jsonOnly ? "JSON" : "YAML"}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * YAML reads `PORT: 8080` as a number, but environment values are strings; converting them here
 * spares every spec author quoting numbers, as Docker Compose does.
 */
function stringifyEnv(spec: Record<string, unknown>): Record<string, unknown> {
  if (!Array.isArray(spec.containers)) return spec;
  const containers = spec.containers.map((container: unknown) => {
    if (typeof container !== "object" || container === null) return container;
    const env = (container as { env?: unknown }).env;
    if (typeof env !== "object" || env === null || Array.isArray(env)) return container;
    const strings = Object.entries(env).map(([key, value]) => [
      key,
      typeof value === "number" || typeof value === "boolean" ? String(value) : value,
    ]);
    return { ...container, env: Object.fromEntries(strings) };
  });
  return { ...spec, containers };
}

/** Reads all of stdin, up to the API's body limit. */
export async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > limits.requestBodyBytesMax) {
      throw new ShoalError("E_BODY_TOO_LARGE", "the spec on stdin is larger than 1 MiB");
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
