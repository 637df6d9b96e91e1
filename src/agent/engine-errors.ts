// How the agent tells an engine that went away from a call that failed, and the text it logs of
// any error: an engine that does not answer ends a pass, anything else fails one task.
import { isShoalError } from "../core/errors.ts";

export function isEngineDown(error: unknown): boolean {
  return isShoalError(error) && error.code === "E_DOCKER_UNAVAILABLE";
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
