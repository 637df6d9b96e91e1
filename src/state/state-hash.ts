// A digest of everything the state machine holds: two replicas at the same applied index must
// have the same one. Tests and `GET /v1/cluster` compare it across nodes.
import { createHash } from "node:crypto";
import type { Database } from "./db.ts";

/** SHA-256 over every table's rows in rowid order, tables by name; `meta` included. */
export function stateHash(db: Database): string {
  const hash = createHash("sha256");
  const tables = db
    .prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .all() as { name: string }[];
  for (const { name } of tables) {
    hash.update(`table ${name}\n`);
    const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all() as object[];
    for (const row of rows) hash.update(`${JSON.stringify(Object.values(row))}\n`);
  }
  return hash.digest("hex");
}
