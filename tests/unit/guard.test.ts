import { beforeAll, describe, expect, it } from "vitest";
import { classifyStatement, loadGuard, MAX_STATEMENT_LENGTH } from "../../src/connectors/guard/index.js";
import { DIALECTS } from "../../src/connectors/types.js";
import { HOSTILE_CORPUS, LEGITIMATE_READS } from "../support/hostile-corpus.js";

beforeAll(async () => {
  await loadGuard();
});

describe("classifyStatement refuses the hostile corpus", () => {
  it("holds at least 150 entries, 45 per dialect, each statement once", () => {
    expect(HOSTILE_CORPUS.length).toBeGreaterThanOrEqual(150);
    for (const dialect of DIALECTS) {
      expect(HOSTILE_CORPUS.filter((entry) => entry.dialect === dialect).length).toBeGreaterThanOrEqual(45);
    }
    const keys = HOSTILE_CORPUS.map((entry) => `${entry.dialect}\u0000${entry.sql}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it.each(HOSTILE_CORPUS)("$dialect: refuses $sql under $rule", (entry) => {
    const verdict = classifyStatement(entry.dialect, entry.sql);
    expect(verdict).toMatchObject({ ok: false, rule: entry.rule });
    if (verdict.ok) return;
    expect(verdict.reason.trim().length).toBeGreaterThan(15);
    // Our own sentences end like sentences; parse errors are PostgreSQL's phrase with a position.
    if (verdict.rule !== "parse_error") expect(verdict.reason).toMatch(/^[A-Z(`a-z@].*\.$/s);
  });
});

describe("classifyStatement accepts legitimate reads", () => {
  it("holds at least 60 reads across the three dialects", () => {
    expect(LEGITIMATE_READS.length).toBeGreaterThanOrEqual(60);
    for (const dialect of DIALECTS) {
      expect(LEGITIMATE_READS.some((entry) => entry.dialect === dialect)).toBe(true);
    }
  });

  it.each(LEGITIMATE_READS)("$dialect: accepts $sql as $kind", (entry) => {
    expect(classifyStatement(entry.dialect, entry.sql)).toEqual({ ok: true, kind: entry.kind });
  });
});

describe("classifyStatement reports parse errors in one short line: the token and its position", () => {
  it.each([
    ["postgresql", "SELECT * FORM guard_target", 'syntax error at or near "FORM" (line 1, column 10)'],
    ["postgresql", "SELEKT 1", 'syntax error at or near "SELEKT" (line 1, column 1)'],
    ["postgresql", "SELECT a\r\nFROM t WHERE", "syntax error at end of input (line 2, column 13)"],
    ["postgresql", "SELECT 'é😀' FORM t", 'syntax error at or near "t" (line 1, column 18)'],
    ["mysql", "SELECT * FORM guard_target", 'syntax error at or near "FORM" (line 1, column 10)'],
    ["mysql", "SELEKT 1", 'syntax error at or near "1" (line 1, column 8)'],
    ["mysql", "SELECT a\nFROM t WHERE", "syntax error at end of input (line 2, column 13)"],
    ["sqlite", "SELECT FROM", 'syntax error at or near "FROM" (line 1, column 8)'],
    ["sqlite", "SELECT 1\n\n  FROM t WHERE AND", 'syntax error at or near "AND" (line 3, column 16)'],
  ] as const)("%s: %j → %s", (dialect, sql, reason) => {
    expect(classifyStatement(dialect, sql)).toEqual({ ok: false, rule: "parse_error", reason });
  });

  it.each(DIALECTS)("%s: quotes at most 40 characters of the statement back", (dialect) => {
    const verdict = classifyStatement(dialect, `SELECT 1 FROM t WHERE "${"x".repeat(500)}" = = 'y${"z".repeat(500)}`);
    expect(verdict).toMatchObject({ ok: false, rule: "parse_error" });
    if (!verdict.ok) expect(verdict.reason.length).toBeLessThan(100);
  });

  it("still names the rule, not the parser, for what MySQL's parser cannot read but the guard knows", () => {
    expect(classifyStatement("mysql", "LOAD DATA INFILE '/etc/passwd' INTO TABLE t")).toMatchObject({ ok: false, rule: "not_read_only" });
  });
});

describe("classifyStatement edge cases", () => {
  it.each(DIALECTS)("%s: allows one trailing semicolon but not a stray one", (dialect) => {
    expect(classifyStatement(dialect, "SELECT 1 ;  ")).toEqual({ ok: true, kind: "select" });
    expect(classifyStatement(dialect, "SELECT 1; SELECT 2;")).toMatchObject({ ok: false, rule: "multiple_statements" });
  });

  // A statement MySQL's parser rejects is split by the tokenizer's semicolons: a string or quoted
  // name spelled ";" at the end is no trailing semicolon (the parsed path counts 2 here too).
  it.each(["SHOW WHERE 1; SELECT ';'", "SHOW WHERE 1; SELECT `;`"])("mysql: counts %j as 2 statements", (sql) => {
    expect(classifyStatement("mysql", sql)).toMatchObject({
      ok: false,
      rule: "multiple_statements",
      reason: expect.stringMatching(/^Found 2 statements;/),
    });
  });

  it("remembers verdicts per dialect: the same text repeated in another dialect is judged afresh", () => {
    const sql = "SELECT 1::int AS one"; // a cast PostgreSQL knows and the MySQL parser does not
    for (let round = 0; round < 2; round++) {
      expect(classifyStatement("postgresql", sql)).toEqual({ ok: true, kind: "select" });
      expect(classifyStatement("mysql", sql)).toMatchObject({ ok: false, rule: "parse_error" });
      expect(classifyStatement("postgresql", `${sql}; DELETE FROM t`)).toMatchObject({ ok: false, rule: "multiple_statements" });
    }
  });

  it.each(DIALECTS)("%s: refuses statements longer than the size limit before parsing", (dialect) => {
    const sql = `SELECT '${"x".repeat(MAX_STATEMENT_LENGTH)}'`;
    expect(classifyStatement(dialect, sql)).toMatchObject({ ok: false, rule: "too_large" });
  });

  it.each(DIALECTS)("%s: refuses absurd nesting instead of throwing", (dialect) => {
    const sql = `SELECT ${"(".repeat(5000)}1${")".repeat(5000)}`;
    const verdict = classifyStatement(dialect, sql);
    // PostgreSQL's parser copes; the PEG parser's is refused unparsed (it would overflow its
    // stack, or fail in time exponential in the depth).
    if (dialect === "postgresql") expect(verdict).toEqual({ ok: true, kind: "select" });
    else expect(verdict).toMatchObject({ ok: false, rule: "too_deeply_nested" });
  });

  it("plans but never analyses a write with EXPLAIN", () => {
    expect(classifyStatement("postgresql", "EXPLAIN UPDATE guard_target SET v = 'x'")).toEqual({ ok: true, kind: "explain" });
    expect(classifyStatement("postgresql", "EXPLAIN UPDATE guard_target SET v = pg_sleep(1)::text")).toMatchObject({
      ok: false,
      rule: "dangerous_function",
    });
    expect(classifyStatement("mysql", "EXPLAIN ANALYZE UPDATE guard_target SET v = 'x'")).toMatchObject({
      ok: false,
      rule: "explain_analyze_write",
    });
  });

  it("names the refused function and says why", () => {
    expect(classifyStatement("postgresql", "SELECT pg_catalog.PG_SLEEP(1)")).toEqual({
      ok: false,
      rule: "dangerous_function",
      reason: "pg_sleep() is refused: it holds the connection idle for as long as asked, up to the statement timeout.",
    });
  });

  it("tells SELECT INTO a table from SELECT INTO variables", () => {
    expect(classifyStatement("postgresql", "SELECT 1 INTO t")).toMatchObject({
      reason: "SELECT ... INTO creates a table; only reads are allowed.",
    });
    expect(classifyStatement("mysql", "SELECT 1 INTO @v")).toMatchObject({
      reason: "SELECT ... INTO @variable sets session variables; only reads are allowed.",
    });
  });

  it("does not mistake columns named like dangerous functions for calls", () => {
    expect(classifyStatement("postgresql", "SELECT pg_sleep, nextval FROM guard_target")).toEqual({ ok: true, kind: "select" });
    expect(classifyStatement("mysql", "SELECT sleep, benchmark FROM guard_target")).toEqual({ ok: true, kind: "select" });
    expect(classifyStatement("sqlite", "SELECT readfile, edit FROM guard_target")).toEqual({ ok: true, kind: "select" });
  });
});
