// SQLite's legacy double-quoted strings. sqlite3 itself treats `"Asia"` as a string when no
// column has that name; better-sqlite3 is built with DQS off and answers "no such column".
// Generated SQL (and all of Spider) relies on the legacy rule, so on that exact error we turn
// the named double-quoted identifier into a string literal, from the parse tree, and retry.

import { parse } from "sql-parser-cst";

interface Ranged {
  type?: string;
  text?: string;
  name?: string;
  range?: [number, number];
}

/** `sql` with every double-quoted identifier named `name` written as a string literal, or
 * null when there is none (the error had another cause). */
export function quotedIdentifierAsString(sql: string, name: string): string | null {
  let program: unknown;
  try {
    program = parse(sql, { dialect: "sqlite", includeRange: true });
  } catch {
    return null;
  }
  const ranges: [number, number][] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== "object") return;
    const n = node as Ranged;
    if (n.type === "identifier" && n.name === name && n.text?.startsWith('"') && n.range) ranges.push(n.range);
    for (const value of Object.values(node)) if (value && typeof value === "object") visit(value);
  };
  visit(program);
  if (ranges.length === 0) return null;
  let out = sql;
  for (const [start, end] of ranges.sort((a, b) => b[0] - a[0])) {
    out = `${out.slice(0, start)}'${name.replaceAll("'", "''")}'${out.slice(end)}`;
  }
  return out;
}

// SQLite 3.41+: `no such column: "Asia" - should this be a string literal in single-quotes?`
const NO_SUCH_COLUMN = /no such column: "([^"]+)" - should this be a string literal/;

/** The name SQLite could not resolve, from its error message. */
export const missingColumnOf = (message: string): string | null => NO_SUCH_COLUMN.exec(message.trim())?.[1] ?? null;
