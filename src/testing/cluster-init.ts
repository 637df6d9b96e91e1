// The API token fields of a `cluster.init` for tests: the token's real hash, and a stand-in for
// its sealed copy (tests that need a real one seal it themselves).
import { createHash } from "node:crypto";

export function apiTokenFields(token: string): {
  apiTokenHash: string;
  apiTokenSealed: string;
  joinSecretSealed: string;
} {
  return {
    apiTokenHash: createHash("sha256").update(token).digest("hex"),
    apiTokenSealed: "",
    joinSecretSealed: "",
  };
}
