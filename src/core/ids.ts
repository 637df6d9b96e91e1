// Identifiers: short, URL-safe, lowercase so they read well in tables and container labels.
// Only proposers call these; the state machine and scheduler receive ids as arguments.
import { customAlphabet } from "nanoid";

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
const idLength = 12;
const tokenLength = 40;

const makeId = customAlphabet(alphabet, idLength);
const makeToken = customAlphabet(
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
  tokenLength,
);

export type IdGenerator = () => string;

export const newId: IdGenerator = () => makeId();
export const newToken = (): string => makeToken();
