// Schema drift: the table's columns (from the connector's introspection) against the shape
// accepted last. A drift keeps failing until the schema returns to that shape or someone
// resolves the alert, which accepts the new shape; so the alert opens like any other.

import type { ColumnSchema } from "../../connectors/types.js";
import { counted } from "../../counted.js";
import type { ColumnSnapshot } from "../../store/column-types.js";
import type { CheckResult, DriftContext } from "./types.js";

export interface SchemaDiff {
  added: ColumnSnapshot[];
  removed: ColumnSnapshot[];
  retyped: { name: string; from: string; to: string }[];
  nullability: { name: string; from: boolean; to: boolean }[];
}

export const snapshotOf = (columns: readonly ColumnSchema[]): ColumnSnapshot[] =>
  columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable }));

export function diffColumns(before: readonly ColumnSnapshot[], after: readonly ColumnSnapshot[]): SchemaDiff {
  const old = new Map(before.map((c) => [c.name, c]));
  const now = new Map(after.map((c) => [c.name, c]));
  const diff: SchemaDiff = { added: [], removed: [], retyped: [], nullability: [] };
  for (const c of after) {
    const was = old.get(c.name);
    if (!was) {
      diff.added.push(c);
      continue;
    }
    // Both, when one ALTER changed both: the NOT NULL was otherwise first named once the type
    // was put back, as if it were a new change.
    if (was.type !== c.type) diff.retyped.push({ name: c.name, from: was.type, to: c.type });
    if (was.nullable !== c.nullable) diff.nullability.push({ name: c.name, from: was.nullable, to: c.nullable });
  }
  for (const c of before) if (!now.has(c.name)) diff.removed.push(c);
  return diff;
}

export const changesIn = (d: SchemaDiff) => d.added.length + d.removed.length + d.retyped.length + d.nullability.length;

export function describeDiff(d: SchemaDiff): string {
  const parts = [
    ...d.added.map((c) => `added ${c.name} (${c.type})`),
    ...d.removed.map((c) => `removed ${c.name} (${c.type})`),
    ...d.retyped.map((c) => `retyped ${c.name} from ${c.from} to ${c.to}`),
    ...d.nullability.map((c) => `${c.name} became ${c.to ? "nullable" : "NOT NULL"}`),
  ];
  return parts.join(", ");
}

export async function runSchemaDrift(ctx: DriftContext): Promise<CheckResult> {
  const columns = await ctx.freshColumns();
  if (columns === null) {
    return { status: "fail", value: null, message: "the table no longer exists", details: { removed_table: true } };
  }
  if (ctx.acceptedColumns === null) {
    const taken = await ctx.acceptColumns(columns);
    return {
      status: "pass",
      value: 0,
      message: taken ? `snapshot of ${counted(columns.length, "column")} taken` : "no snapshot taken: the table was moved, or its snapshot taken, during this run; the next run compares",
      details: { columns: columns.length },
    };
  }
  const diff = diffColumns(ctx.acceptedColumns, columns);
  const changes = changesIn(diff);
  if (changes === 0) return { status: "pass", value: 0, message: `${counted(columns.length, "column")}, as accepted` };
  return { status: "fail", value: changes, message: `schema drift: ${describeDiff(diff)}`, details: { ...diff } };
}
