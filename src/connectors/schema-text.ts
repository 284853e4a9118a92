// Compact text form of a schema: one line per table, readable by people and cheap in model
// tokens. Used for the session's cached `db_schema` and for the agent's schema context.
//
//   Album(AlbumId integer PK, Title nvarchar(160), ArtistId integer -> Artist.ArtistId) ~347 rows -- comment

import type { SchemaSnapshot, TableSchema } from "./types.js";

const SIMPLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const quoteName = (name: string) => (SIMPLE_NAME.test(name) ? name : `"${name.replaceAll('"', '""')}"`);

/** Schema-qualified unless in the default schema (public / the connected database / main). */
export function tableName(table: Pick<TableSchema, "schema" | "name">, defaultSchema: string | null): string {
  const name = quoteName(table.name);
  return table.schema && table.schema !== defaultSchema ? `${quoteName(table.schema)}.${name}` : name;
}

export interface RenderOptions {
  /** Keep lengths and precisions (`nvarchar(160)`, `numeric(10,2)`). Dropping them saves
   * 14-17% of the model's tokens on Chinook and padded Spider schemas (o200k) and rarely
   * matters for writing a query; `enum(...)`/`set(...)` values and MySQL's boolean
   * `tinyint(1)` are always kept. */
  typeSizes?: boolean;
}

const TYPE_SIZE = /(?<!tinyint)\(\s*\d+\s*(?:,\s*\d+\s*)?\)/g;

export function renderTable(table: TableSchema, defaultSchema: string | null, opts: RenderOptions = {}): string {
  const pk = new Set(table.primary_key);
  const fkOf = new Map<string, string>();
  for (const fk of table.foreign_keys) {
    if (fk.columns.length === 1) {
      const ref = tableName({ schema: fk.references.schema, name: fk.references.table }, defaultSchema);
      fkOf.set(fk.columns[0]!, `${ref}.${quoteName(fk.references.columns[0] ?? "?")}`);
    }
  }
  const columns = table.columns.map((c) => {
    const type = opts.typeSizes === false ? c.type.replace(TYPE_SIZE, "") : c.type;
    let text = `${quoteName(c.name)} ${type || "any"}`;
    if (pk.has(c.name) && table.primary_key.length === 1) text += " PK";
    else if (!c.nullable) text += " NOT NULL";
    const ref = fkOf.get(c.name);
    if (ref) text += ` -> ${ref}`;
    if (c.comment) text += ` /* ${c.comment.replaceAll("*/", "* /")} */`;
    return text;
  });
  if (table.primary_key.length > 1) columns.push(`PK(${table.primary_key.map(quoteName).join(", ")})`);
  for (const fk of table.foreign_keys.filter((f) => f.columns.length > 1)) {
    const ref = tableName({ schema: fk.references.schema, name: fk.references.table }, defaultSchema);
    columns.push(`(${fk.columns.map(quoteName).join(", ")}) -> ${ref}(${fk.references.columns.map(quoteName).join(", ")})`);
  }
  let line = `${table.kind === "view" ? "VIEW " : ""}${tableName(table, defaultSchema)}(${columns.join(", ")})`;
  if (table.estimated_rows !== null) line += ` ~${table.estimated_rows} rows`;
  if (table.comment) line += ` -- ${table.comment.replaceAll("\n", " ")}`;
  return line;
}

/** The schema every unqualified name resolves to, so it can be left out of names. */
export function defaultSchemaOf(snapshot: SchemaSnapshot): string | null {
  if (snapshot.dialect === "postgresql") return "public";
  const schemas = new Set(snapshot.tables.map((t) => t.schema));
  return schemas.size === 1 ? ([...schemas][0] ?? null) : null;
}

export function renderSchema(snapshot: SchemaSnapshot, tables: TableSchema[] = snapshot.tables, opts: RenderOptions = {}): string {
  const defaultSchema = defaultSchemaOf(snapshot);
  return tables.map((t) => renderTable(t, defaultSchema, opts)).join("\n");
}
