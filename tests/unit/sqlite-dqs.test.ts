// SQLite's legacy double-quoted strings, rewritten from the parse tree only where SQLite
// reported the name as unresolved.

import { describe, expect, it } from "vitest";

import { missingColumnOf, quotedIdentifierAsString } from "../../src/connectors/guard/index.js";

describe("quotedIdentifierAsString", () => {
  it.each([
    [`SELECT * FROM t WHERE c = "Asia"`, "Asia", `SELECT * FROM t WHERE c = 'Asia'`],
    [`SELECT * FROM t WHERE c = "Asia" OR d = "Asia"`, "Asia", `SELECT * FROM t WHERE c = 'Asia' OR d = 'Asia'`],
    [`SELECT * FROM t WHERE c = "O'Brien"`, "O'Brien", `SELECT * FROM t WHERE c = 'O''Brien'`],
    [`SELECT "Asia" AS x, 'say "Asia"' FROM t WHERE c = "Asia"`, "Asia", `SELECT 'Asia' AS x, 'say "Asia"' FROM t WHERE c = 'Asia'`],
  ])("rewrites %s", (sql, name, expected) => {
    expect(quotedIdentifierAsString(sql, name)).toBe(expected);
  });

  it.each([
    [`SELECT * FROM t WHERE c = Asia`, "Asia"],
    [`SELECT * FROM t WHERE c = 'Asia'`, "Asia"],
    [`SELECT * FROM t WHERE c = "Europe"`, "Asia"],
    [`not sql at all "Asia"`, "Asia"],
  ])("leaves %s alone (null)", (sql, name) => {
    expect(quotedIdentifierAsString(sql, name)).toBeNull();
  });
});

describe("missingColumnOf", () => {
  it("reads the name only from SQLite's double-quoted-string hint", () => {
    expect(missingColumnOf(`no such column: "JetBlue Airways" - should this be a string literal in single-quotes?`)).toBe("JetBlue Airways");
    expect(missingColumnOf("no such column: Asia")).toBeNull();
    expect(missingColumnOf("syntax error")).toBeNull();
  });
});
