// Sealed secrets: AES-256-GCM under the cluster key. The store holds the API token only as its
// hash (to check) and sealed (so each member can write its own `api.token`); the key is made with
// the cluster, given to each member over mutual TLS when it is admitted, and kept 0600 as
// `<data dir>/cluster.key`. A log entry, a snapshot or a packet capture shows neither.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ShoalError } from "../core/errors.ts";
import { writeSecret } from "./data-dir.ts";

const keyBytes = 32;
const ivBytes = 12;
const tagBytes = 16;
export const clusterKeyFile = "cluster.key";

export function newClusterKey(): Buffer {
  return randomBytes(keyBytes);
}

export function readClusterKey(dataDir: string): Buffer | null {
  const path = join(dataDir, clusterKeyFile);
  if (!existsSync(path)) return null;
  const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
  if (key.length !== keyBytes) throw new ShoalError("E_VALIDATION", `${path} is not a cluster key`);
  return key;
}

export function writeClusterKey(dataDir: string, key: Buffer): void {
  writeSecret(join(dataDir, clusterKeyFile), key.toString("base64"));
}

/** `base64(iv | tag | ciphertext)`. */
export function seal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64");
}

/** The plaintext, or null when `sealed` was not sealed under `key` (or was changed). */
export function unseal(key: Buffer, sealed: string): string | null {
  const bytes = Buffer.from(sealed, "base64");
  if (bytes.length < ivBytes + tagBytes) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, ivBytes));
    decipher.setAuthTag(bytes.subarray(ivBytes, ivBytes + tagBytes));
    return Buffer.concat([
      decipher.update(bytes.subarray(ivBytes + tagBytes)),
      decipher.final(),
    ]).toString("utf8");
  } catch {
    return null;
  }
}
