// Quoting of the names Pulse puts into SQL itself, per dialect (monitoring checks, the agent's
// sample values). Names come from users, so they are first matched against the introspected
// schema (resolveTable in services/monitored-tables.ts) and then quoted here; nothing a user
// typed reaches a statement any other way.

import type { Dialect } from "./types.js";

/** A quoted identifier: "a""b" (PostgreSQL, SQLite) or `a``b` (MySQL). */
export function quoteIdent(dialect: Dialect, name: string): string {
  refuseNul(name);
  if (dialect === "mysql") return "`" + name.replaceAll("`", "``") + "`";
  return '"' + name.replaceAll('"', '""') + '"';
}

/** A string literal. MySQL also treats backslash as an escape (unless NO_BACKSLASH_ESCAPES,
 * where the doubled backslash only changes the value, never ends the literal). PostgreSQL
 * runs with standard_conforming_strings (the default since 9.1): only quotes are doubled. */
export function quoteLiteral(dialect: Dialect, value: string): string {
  refuseNul(value);
  const body = dialect === "mysql" ? value.replaceAll("\\", "\\\\").replaceAll("'", "''") : value.replaceAll("'", "''");
  return `'${body}'`;
}

/** schema.table, or the bare table name where there is no schema (SQLite's main database). */
export function qualifiedName(dialect: Dialect, schema: string | null, table: string): string {
  return schema === null ? quoteIdent(dialect, table) : `${quoteIdent(dialect, schema)}.${quoteIdent(dialect, table)}`;
}

function refuseNul(text: string) {
  if (text.includes("\u0000")) throw new Error("a name with a NUL character cannot be quoted");
}
