// The one logger shape every layer takes: structured fields first, then the message, as pino
// logs them (JSON lines with the node id; `--pretty` for a person).

export interface Logger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
}
