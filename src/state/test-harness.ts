// Commands the state machine's tests share: node n1's registration and one plain container.
import type { CommandOf } from "./commands.ts";

export const container = {
  name: "httpd",
  image: "shoal-test/busybox:1",
  env: {},
  ports: [],
  mounts: [],
  essential: true,
};

/** Node n1 ("pi") registering at `at`; other fields by `overrides`. */
export function register(
  at: number,
  overrides: Partial<CommandOf<"node.register">> = {},
): CommandOf<"node.register"> {
  return {
    type: "node.register",
    at,
    id: "n1",
    name: "pi",
    address: "10.0.0.1",
    port: 7420,
    arch: "x64",
    os: "linux",
    cpus: 2,
    memoryMb: 1024,
    labels: {},
    version: "0.1.0",
    ...overrides,
  };
}
