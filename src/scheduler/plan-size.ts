// Conservative estimates of the bytes each part of a plan adds to the `plan.apply` command that
// carries it, so that an evaluation stops growing its plan before the log would refuse it.

/** The command around an empty plan, `{"type":"plan.apply","at":…,"plan":{…}}`, with room. */
export const planEnvelopeBytes = 256;

/** The longest JSON text of any number, such as "-1.2345678901234567e+308". */
const numberBytesMax = 24;

/** Printable ASCII other than `"` and `\`: JSON keeps it as is, one byte per character. */
const plainJsonText = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * Bytes of a string (or null) as JSON text: exact for plain ASCII, otherwise the worst case of
 * six bytes (`\uXXXX`) per UTF-16 code unit, which bounds every escape and UTF-8 sequence.
 */
export function jsonTextBytes(text: string | null): number {
  if (text === null) return "null".length;
  return plainJsonText.test(text) ? text.length + 2 : text.length * 6 + 2;
}

// The fixed characters of each entry, trailing comma included.
const createFixedBytes = '{"id":,"service":,"taskDefinition":{"family":,"revision":},"node":},'
  .length;
const assignFixedBytes = '{"taskId":,"node":},'.length;
const stopFixedBytes = '{"taskId":,"reason":},'.length;
const eventFixedBytes = '{"type":,"message":,"service":,"task":},'.length;
const readFixedBytes = ":,".length;

export function createBytes(
  id: string,
  service: string | null,
  family: string,
  node: string | null,
): number {
  const texts = jsonTextBytes(id) + jsonTextBytes(service) + jsonTextBytes(family);
  return createFixedBytes + texts + numberBytesMax + jsonTextBytes(node);
}

export function assignBytes(taskId: string, node: string): number {
  return assignFixedBytes + jsonTextBytes(taskId) + jsonTextBytes(node);
}

export function stopBytes(taskId: string, reason: string): number {
  return stopFixedBytes + jsonTextBytes(taskId) + jsonTextBytes(reason);
}

export function eventBytes(
  type: string,
  message: string,
  service: string | null,
  task: string | null,
): number {
  const texts = jsonTextBytes(type) + jsonTextBytes(message) + jsonTextBytes(service);
  return eventFixedBytes + texts + jsonTextBytes(task);
}

/** One `"key":version` entry of the plan's reads. */
export function readBytes(key: string): number {
  return readFixedBytes + jsonTextBytes(key) + numberBytesMax;
}
