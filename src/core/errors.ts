// Errors with stable codes. Clients branch on `code`; messages are for people.

export const errorCodes = {
  E_VALIDATION: 400,
  E_BAD_JSON: 400,
  E_UNAUTHORIZED: 401,
  E_NOT_FOUND: 404,
  E_CONFLICT: 409,
  E_BODY_TOO_LARGE: 413,
  E_NO_CAPACITY: 409,
  /** An ingress port another service, a task's fixed host port or shoal's API already holds. */
  E_PORT_CONFLICT: 409,
  E_TOO_MANY: 429,
  E_NOT_LEADER: 503,
  E_NO_QUORUM: 503,
  E_NOT_READY: 503,
  E_DOCKER_UNAVAILABLE: 503,
  E_IMAGE_NOT_FOUND: 404,
  // 507 Insufficient Storage, not 503: the request is good and the node is up, but it cannot
  // store anything until someone frees space. The 503s above pass by themselves (an election,
  // a busy log) and clients retry them at once; this one needs a person and says so in any log.
  E_NO_SPACE: 507,
  E_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class ShoalError extends Error {
  override name = "ShoalError";
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return errorCodes[this.code];
  }
}

export function isShoalError(value: unknown): value is ShoalError {
  return value instanceof ShoalError;
}

/**
 * The disk is full (ENOSPC, SQLITE_FULL): what the failed call was to write is not written, not
 * even in part, and the same call may succeed once space is freed. Adapters throw it for their
 * own errors of that kind; the Raft host waits and tries again instead of crashing.
 */
export function noSpaceError(what: string, cause: unknown): ShoalError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ShoalError("E_NO_SPACE", `${what}: the disk is full (${reason})`, { cause });
}

export function isNoSpaceError(value: unknown): value is ShoalError {
  return value instanceof ShoalError && value.code === "E_NO_SPACE";
}

/** The result of pure code that may fail in an expected way: returned, never thrown. */
export type Result<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message: string };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: ErrorCode, message: string): Result<T> {
  return { ok: false, code, message };
}
