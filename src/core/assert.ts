// Assertions state what must hold; a failure is a bug in shoal and crashes the process.
// Bad input from users or peers is never asserted: it is a ShoalError with a code.

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionError(`${message}: ${JSON.stringify(value)}`);
}
