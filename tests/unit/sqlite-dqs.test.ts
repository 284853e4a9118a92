// SQLite's legacy double-quoted strings, rewritten from the parse tree only where SQLite
// reported the name as unresolved.

import { describe, expect, it } from "vitest";

import { missingColumnOf, quotedIdentifierAsString } from "../../src/connectors/guard/index.js";
import { doubleQuotedIdentifiers, withLegacyStrings } from "../../src/connectors/guard/sqlite-dqs.js";

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

describe("withLegacyStrings", () => {
  const sql = `SELECT "Name", "Asia" FROM t WHERE c = "Asia" OR d = "Europe" OR "Name" = 'say "Asia"'`;

  it("finds every double-quoted identifier by name, from one parse", () => {
    const identifiers = doubleQuotedIdentifiers(sql)!;
    expect([...identifiers.keys()].sort()).toEqual(["Asia", "Europe", "Name"]);
    expect(identifiers.get("Asia")).toHaveLength(2);
  });

  it.each([
    [["Asia"], `SELECT "Name", 'Asia' FROM t WHERE c = 'Asia' OR d = "Europe" OR "Name" = 'say "Asia"'`],
    [["Asia", "Europe"], `SELECT "Name", 'Asia' FROM t WHERE c = 'Asia' OR d = 'Europe' OR "Name" = 'say "Asia"'`],
    [["Europe", "Europe"], `SELECT "Name", "Asia" FROM t WHERE c = "Asia" OR d = 'Europe' OR "Name" = 'say "Asia"'`],
    [["Nowhere"], sql],
  ])("writes %j as strings, leaving other names and string contents alone", (names, expected) => {
    expect(withLegacyStrings(sql, doubleQuotedIdentifiers(sql)!, names)).toBe(expected);
  });

  it("answers null for a statement that does not parse", () => {
    expect(doubleQuotedIdentifiers(`SELECT "Asia" FROM`)).toBeNull();
  });
});
