// SQLite's legacy double-quoted strings. sqlite3 itself treats `"Asia"` as a string when no
// column has that name; better-sqlite3 is built with DQS off and answers "no such column".
// Generated SQL (and all of Spider) relies on the legacy rule, so on that exact error the
// SQLite process (drivers/sqlite-child.ts) turns the named double-quoted identifier into a
// string literal, from the parse tree, and compiles again; the guard then checks the result.

import { parse } from "sql-parser-cst";

import { DomainError } from "../../errors.js";
import { serverWhitespaceAsSpaces } from "./server-whitespace.js";

/** Distinct double-quoted names one statement may have read as strings. Each costs SQLite
 * one more compile of the statement; generated SQL uses one to three (Spider: at most 3). */
export const MAX_LEGACY_STRINGS = 8;

interface Ranged {
  type?: string;
  text?: string;
  name?: string;
  range?: [number, number];
}

/** Where each double-quoted identifier of `sql` is, by name, from one parse; null when the
 * statement does not parse. */
export function doubleQuotedIdentifiers(sql: string): Map<string, [number, number][]> | null {
  let program: unknown;
  try {
    program = parse(serverWhitespaceAsSpaces("sqlite", sql), { dialect: "sqlite", includeRange: true });
  } catch {
    return null;
  }
  const byName = new Map<string, [number, number][]>();
  const visit = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== "object") return;
    const n = node as Ranged;
    if (n.type === "identifier" && n.name !== undefined && n.text?.startsWith('"') && n.range) {
      byName.set(n.name, [...(byName.get(n.name) ?? []), n.range]);
    }
    for (const value of Object.values(node)) if (value && typeof value === "object") visit(value);
  };
  visit(program);
  return byName;
}

/** `sql` with every double-quoted identifier named in `names` written as a string literal. */
export function withLegacyStrings(sql: string, identifiers: Map<string, [number, number][]>, names: Iterable<string>): string {
  const edits: { range: [number, number]; literal: string }[] = [];
  for (const name of new Set(names)) {
    const literal = `'${name.replaceAll("'", "''")}'`;
    for (const range of identifiers.get(name) ?? []) edits.push({ range, literal });
  }
  let out = sql;
  for (const { range, literal } of edits.sort((a, b) => b.range[0] - a.range[0])) {
    out = `${out.slice(0, range[0])}${literal}${out.slice(range[1])}`;
  }
  return out;
}

/** `sql` with every double-quoted identifier named `name` written as a string literal, or
 * null when there is none (the error had another cause). */
export function quotedIdentifierAsString(sql: string, name: string): string | null {
  const identifiers = doubleQuotedIdentifiers(sql);
  return identifiers?.has(name) ? withLegacyStrings(sql, identifiers, [name]) : null;
}

// SQLite 3.41+: `no such column: "Asia" - should this be a string literal in single-quotes?`
const NO_SUCH_COLUMN = /no such column: "([^"]+)" - should this be a string literal/;

/** The name SQLite could not resolve, from its error message. */
export const missingColumnOf = (message: string): string | null => NO_SUCH_COLUMN.exec(message.trim())?.[1] ?? null;

/** SQLite compiled the statement only once legacy strings were read as strings: `sql` is that
 * text, which the guard must check before it runs (guarded.ts). */
export class LegacyStringsError extends DomainError {
  constructor(
    message: string,
    readonly sql: string,
  ) {
    super("sql_failed", message);
    this.name = "LegacyStringsError";
  }
}

export const tooManyLegacyStrings = () =>
  new DomainError(
    "sql_failed",
    `More than ${MAX_LEGACY_STRINGS} double-quoted names in this statement are not columns. Write text values in single quotes ('like this'); double quotes are for column and table names.`,
  );
