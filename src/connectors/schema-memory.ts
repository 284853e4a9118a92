// What the cached schemas of every connector in the process may hold. A catalog is the
// database's to size (thousands of tables, long comments: 160 MB of heap for one measured), and
// each saved connection keeps its own, so without a bound one user's connections to a large
// catalog could take the whole heap. One snapshot may be SCHEMA_MAX_BYTES at most (past that
// the read is refused, naming the setting); all of them SCHEMA_CACHE_MAX_BYTES together, the
// least recently used forgotten first (read again on next use, at the cost of a catalog read).

import { DomainError } from "../errors.js";
import { forEachInSlices } from "../in-slices.js";
import type { SchemaSnapshot } from "./types.js";

/** A connector as the memory sees it: something that can drop its cached schema. */
export interface SchemaHolder {
  forgetSchema(): void;
}

export interface SchemaMemoryLimits {
  /** One snapshot, at most. */
  maxBytes: number;
  /** Every snapshot kept, together. */
  maxTotalBytes: number;
}

/** About what a snapshot takes as JSON (and about as much in the heap, measured): its strings,
 * and a few dozen bytes for each object around them. Linear, far cheaper than serialising, and
 * in slices (src/in-slices.ts): a catalog may have 100,000 tables. */
export async function schemaBytes(snapshot: SchemaSnapshot): Promise<number> {
  let bytes = 64;
  await forEachInSlices(snapshot.tables, (t) => {
    bytes += 120 + t.name.length + (t.schema?.length ?? 0) + (t.comment?.length ?? 0);
    for (const c of t.columns) bytes += 56 + c.name.length + c.type.length + (c.comment?.length ?? 0);
    for (const k of t.primary_key) bytes += 3 + k.length;
    for (const fk of t.foreign_keys) {
      bytes += 80 + fk.references.table.length + (fk.references.schema?.length ?? 0);
      for (const column of [...fk.columns, ...fk.references.columns]) bytes += 3 + column.length;
    }
  });
  return bytes;
}

const mib = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;

export class SchemaMemory {
  /** Snapshots kept, least recently used first (a Map keeps insertion order). */
  private readonly held = new Map<SchemaHolder, number>();
  private total = 0;

  constructor(readonly limits: SchemaMemoryLimits) {}

  /** The bytes of `snapshot`; refused past the limit of one. */
  async measure(snapshot: SchemaSnapshot): Promise<number> {
    const bytes = await schemaBytes(snapshot);
    if (bytes > this.limits.maxBytes) {
      const columns = snapshot.tables.reduce((n, t) => n + t.columns.length, 0);
      throw new DomainError(
        "result_too_large",
        `This database's schema is about ${mib(bytes)} (${snapshot.tables.length} tables, ${columns} columns), more than the ${mib(this.limits.maxBytes)} Pulse keeps for one connection (SCHEMA_MAX_BYTES): connect as a role that sees fewer schemas or tables, or raise SCHEMA_MAX_BYTES`,
        { schema_bytes: bytes, max_bytes: this.limits.maxBytes },
      );
    }
    return bytes;
  }

  /** `holder` keeps a snapshot of `bytes` (measured) from now on, in place of any it kept;
   * others are forgotten until all fit. */
  keep(holder: SchemaHolder, bytes: number): void {
    this.release(holder);
    this.held.set(holder, bytes);
    this.total += bytes;
    for (const [other, size] of this.held) {
      if (this.total <= this.limits.maxTotalBytes) break;
      if (other === holder) continue;
      other.forgetSchema();
      this.held.delete(other);
      this.total -= size;
    }
  }

  /** `holder`'s snapshot was just used: the last to be forgotten. */
  touch(holder: SchemaHolder): void {
    const bytes = this.held.get(holder);
    if (bytes === undefined) return;
    this.held.delete(holder);
    this.held.set(holder, bytes);
  }

  /** `holder` keeps no snapshot any more (closed, or its read failed). */
  release(holder: SchemaHolder): void {
    const bytes = this.held.get(holder);
    if (bytes === undefined) return;
    this.held.delete(holder);
    this.total -= bytes;
  }

  /** Bytes kept now, for tests and metrics. */
  get heldBytes(): number {
    return this.total;
  }
}
