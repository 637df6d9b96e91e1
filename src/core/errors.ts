// Errors with stable codes. Clients branch on `code`; messages are for people.

export const errorCodes = {
  E_VALIDATION: 400,
  E_BAD_JSON: 400,
  E_UNAUTHORIZED: 401,
  E_NOT_FOUND: 404,
  E_CONFLICT: 409,
  E_BODY_TOO_LARGE: 413,
  E_NO_CAPACITY: 409,
  E_TOO_MANY: 429,
  E_NOT_LEADER: 503,
  E_NO_QUORUM: 503,
  E_NOT_READY: 503,
  E_DOCKER_UNAVAILABLE: 503,
  E_IMAGE_NOT_FOUND: 404,
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

/** The result of pure code that may fail in an expected way: returned, never thrown. */
export type Result<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message: string };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: ErrorCode, message: string): Result<T> {
  return { ok: false, code, message };
}
