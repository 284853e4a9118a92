// Compact text form of a schema: one line per table, readable by people and cheap in model
// tokens. Used for the session's cached `db_schema` and for the agent's schema context.
//
//   Album(AlbumId integer PK, Title nvarchar(160), ArtistId integer -> Artist.ArtistId) ~347 rows -- comment
//
// A name is shown as the model must write it in that dialect: the agent copies what it reads.

import { mariadbKeywords, mysqlKeywords, postgresqlKeywords, sqliteKeywords } from "sql-parser-cst";

import { escapedChar } from "../escaped-char.js";
import { quoteIdent } from "./sql-text.js";
import type { Dialect, SchemaSnapshot, TableSchema } from "./types.js";

/** Names read as written when unquoted. PostgreSQL folds an unquoted name to lower case, so
 * `Orders` shown bare read the table `orders` instead. */
const PLAIN_NAME: Record<Dialect, RegExp> = {
  postgresql: /^[a-z_][a-z0-9_]*$/,
  mysql: /^[A-Za-z_][A-Za-z0-9_]*$/,
  sqlite: /^[A-Za-z_][A-Za-z0-9_]*$/,
};

/** Reserved words, as the guard's parser knows them: a column `user` shown bare read the login's
 * name in PostgreSQL, `current_date` today's date, and `order` is a syntax error. */
const RESERVED: Record<Dialect, Readonly<Record<string, boolean>>> = {
  postgresql: postgresqlKeywords,
  mysql: { ...mysqlKeywords, ...mariadbKeywords },
  sqlite: sqliteKeywords,
};

/** Characters that would start a line of their own in the prompt (a newline in a name or a
 * comment wrote a fake table or rule into it), or turn text around (an RTL override). */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/** Text from the database on one line, as data: a comment, a sample value. */
export const oneLine = (text: string) => text.replace(UNPRINTABLE, " ");

/** `name` as the model must write it: bare when the dialect reads it as written, else quoted as
 * the dialect quotes (double quotes; backticks in MySQL, where "a b" is a string). Unprintable
 * characters are shown escaped (`\u{a}`): such a name can then not be written as shown, which
 * is the lesser harm. */
export function shownName(name: string, dialect: Dialect): string {
  if (PLAIN_NAME[dialect].test(name) && !RESERVED[dialect][name.toUpperCase()]) return name;
  return quoteIdent(dialect, name.replace(UNPRINTABLE, escapedChar));
}

/** How a schema's names are shown: its dialect, and the schema unqualified names resolve to
 * (left out of names). */
export interface Naming {
  dialect: Dialect;
  defaultSchema: string | null;
}

/** Schema-qualified unless in the default schema (the first of PostgreSQL's search_path, the
 * connected database, main). */
export function tableName(table: Pick<TableSchema, "schema" | "name">, naming: Naming): string {
  const name = shownName(table.name, naming.dialect);
  return table.schema && table.schema !== naming.defaultSchema ? `${shownName(table.schema, naming.dialect)}.${name}` : name;
}

export interface RenderOptions {
  /** Keep lengths and precisions (`nvarchar(160)`, `numeric(10,2)`). Dropping them saves
   * 14-17% of the model's tokens on Chinook and padded Spider schemas (o200k) and rarely
   * matters for writing a query; `enum(...)`/`set(...)` values and MySQL's boolean
   * `tinyint(1)` are always kept. */
  typeSizes?: boolean;
}

const TYPE_SIZE = /(?<!tinyint)\(\s*\d+\s*(?:,\s*\d+\s*)?\)/g;

export function renderTable(table: TableSchema, naming: Naming, opts: RenderOptions = {}): string {
  const name = (column: string) => shownName(column, naming.dialect);
  const pk = new Set(table.primary_key);
  const fkOf = new Map<string, string>();
  for (const fk of table.foreign_keys) {
    if (fk.columns.length === 1) {
      const ref = tableName({ schema: fk.references.schema, name: fk.references.table }, naming);
      fkOf.set(fk.columns[0]!, `${ref}.${name(fk.references.columns[0] ?? "?")}`);
    }
  }
  const columns = table.columns.map((c) => {
    const type = opts.typeSizes === false ? c.type.replace(TYPE_SIZE, "") : c.type;
    let text = `${name(c.name)} ${oneLine(type) || "any"}`;
    if (pk.has(c.name) && table.primary_key.length === 1) text += " PK";
    else if (!c.nullable) text += " NOT NULL";
    const ref = fkOf.get(c.name);
    if (ref) text += ` -> ${ref}`;
    if (c.comment) text += ` /* ${oneLine(c.comment).replaceAll("*/", "* /")} */`;
    return text;
  });
  if (table.primary_key.length > 1) columns.push(`PK(${table.primary_key.map(name).join(", ")})`);
  for (const fk of table.foreign_keys.filter((f) => f.columns.length > 1)) {
    const ref = tableName({ schema: fk.references.schema, name: fk.references.table }, naming);
    columns.push(`(${fk.columns.map(name).join(", ")}) -> ${ref}(${fk.references.columns.map(name).join(", ")})`);
  }
  let line = `${table.kind === "view" ? "VIEW " : ""}${tableName(table, naming)}(${columns.join(", ")})`;
  if (table.estimated_rows !== null) line += ` ~${table.estimated_rows} rows`;
  if (table.comment) line += ` -- ${oneLine(table.comment)}`;
  return line;
}

/** How `snapshot`'s names are shown. PostgreSQL resolves unqualified names by the role's
 * search_path, whose first schema introspection reads (`public` in a snapshot made before it
 * did); elsewhere the one schema all tables are in, if they are. */
export function namingOf(snapshot: SchemaSnapshot): Naming {
  if (snapshot.dialect === "postgresql") return { dialect: snapshot.dialect, defaultSchema: snapshot.default_schema === undefined ? "public" : snapshot.default_schema };
  const schemas = new Set(snapshot.tables.map((t) => t.schema));
  return { dialect: snapshot.dialect, defaultSchema: schemas.size === 1 ? ([...schemas][0] ?? null) : null };
}

export function renderSchema(snapshot: SchemaSnapshot, tables: TableSchema[] = snapshot.tables, opts: RenderOptions = {}): string {
  const naming = namingOf(snapshot);
  return tables.map((t) => renderTable(t, naming, opts)).join("\n");
}
