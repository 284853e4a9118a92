// The guard as requests use it (statement-guard.ts): a statement parsed in a worker thread gets
// the verdict it gets inline, a long statement past the limit is refused unparsed, and a short
// one never leaves the caller's thread; one user's long statements are parsed one after another.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { classifyUncached, loadGuard } from "../../src/connectors/guard/index.js";
import { MAX_PAREN_DEPTH, parenNesting } from "../../src/connectors/guard/nesting.js";
import { createStatementGuard, INLINE_PARSE_MAX_CHARS } from "../../src/connectors/guard/statement-guard.js";
import { HOSTILE_CORPUS, LEGITIMATE_READS } from "../support/hostile-corpus.js";

const guard = createStatementGuard({ maxChars: 10_000, threads: 2, timeoutMs: 60_000 });
beforeAll(() => loadGuard());
afterAll(() => guard.close());

/** The same statement, long enough to be parsed off the event loop. */
const padded = (sql: string) => `${sql}${" ".repeat(INLINE_PARSE_MAX_CHARS + 1)}`;

describe("createStatementGuard", () => {
  it("gives every hostile and legitimate statement, parsed in a worker thread, its inline verdict", async () => {
    const entries = [...HOSTILE_CORPUS, ...LEGITIMATE_READS];
    const offThread = await Promise.all(entries.map((entry) => guard.classify(entry.dialect, padded(entry.sql))));
    entries.forEach((entry, i) => {
      expect(offThread[i], `${entry.dialect}: ${entry.sql}`).toEqual(classifyUncached(entry.dialect, padded(entry.sql)));
    });
    expect(offThread.filter((verdict) => !verdict.ok)).toHaveLength(HOSTILE_CORPUS.length);
  });

  it("answers short statements and recent long ones synchronously", async () => {
    expect(guard.classify("postgresql", "SELECT 1")).toEqual({ ok: true, kind: "select" });
    const long = padded("SELECT 2");
    expect(guard.classify("mysql", long)).toBeInstanceOf(Promise);
    await guard.classify("mysql", long);
    expect(guard.classify("mysql", long)).toEqual({ ok: true, kind: "select" });
  });

  it("parses short MySQL and SQLite statements off the caller's thread when they nest deep, and refuses deeper ones unparsed", async () => {
    // A failing parse of sql-parser-cst doubles in time with each level of parentheses.
    const failing = (depth: number) => `SELECT ${"(".repeat(depth)}7 +${")".repeat(depth)}`;
    for (const dialect of ["mysql", "sqlite"] as const) {
      expect(guard.classify(dialect, failing(MAX_PAREN_DEPTH - 2))).toBeInstanceOf(Promise);
      expect(await guard.classify(dialect, failing(MAX_PAREN_DEPTH - 2))).toMatchObject({ ok: false, rule: "parse_error" });
      expect(guard.classify(dialect, failing(MAX_PAREN_DEPTH + 1))).toMatchObject({ ok: false, rule: "too_deeply_nested" });
      expect(guard.classify(dialect, `SELECT ${"(".repeat(25)}7`)).toMatchObject({ ok: false, rule: "too_deeply_nested" });
      // Shallow ones stay inline; several groups 6 deep of LIKE, slow to parse even when
      // valid, do not; deep valid ones still read.
      expect(guard.classify(dialect, `SELECT ${"(".repeat(6)}7${")".repeat(6)}`)).toEqual({ ok: true, kind: "select" });
      const like = `${"1 LIKE (".repeat(6)}7${")".repeat(6)}`;
      expect(guard.classify(dialect, `SELECT ${like}, ${like}`)).toBeInstanceOf(Promise);
      expect(await guard.classify(dialect, `SELECT ${"(".repeat(MAX_PAREN_DEPTH)}7${")".repeat(MAX_PAREN_DEPTH)}`)).toEqual({ ok: true, kind: "select" });
    }
    // PostgreSQL's parser has no such cost: a deep statement is judged inline.
    expect(guard.classify("postgresql", `SELECT ${"(".repeat(25)}7${")".repeat(25)}`)).toEqual({ ok: true, kind: "select" });
  });

  it("reads the nesting outside quoted text and comments", () => {
    expect(parenNesting("SELECT ((1)) AS x, (2)", "sqlite")).toEqual({ depth: 2, weight: 2 + 4 + 2 });
    expect(parenNesting("SELECT '((((' AS x, \"((((\", `((((`, [((((] -- ((((\n /* (((( */ (1)", "sqlite").depth).toBe(1);
    expect(parenNesting("SELECT 'it''s (', \"a\\\"(\" # ((((\n, (1)", "mysql").depth).toBe(1);
    // A quote the text opens and never closes hides nothing from the parse that follows.
    expect(parenNesting("SELECT ((( 'x", "sqlite").depth).toBe(3);
  });

  it("parses one user's long statements one after the other, so another user's does not wait behind them all", async () => {
    const single = createStatementGuard({ maxChars: 100_000, threads: 1, timeoutMs: 60_000 });
    try {
      // Long enough that each takes the one thread for a while; distinct, so none is cached.
      const long = (tag: string) => `SELECT '${tag}' AS t FROM x WHERE ${Array.from({ length: 400 }, (_, i) => `(a${i} + ${i}) * 2 > ${i}`).join(" AND ")}`;
      const finished: string[] = [];
      const mark = (tag: string) => (verdict: unknown) => {
        finished.push(tag);
        return verdict;
      };
      const flood = ["a1", "a2", "a3", "a4"].map((tag) => Promise.resolve(single.classify("postgresql", long(tag), 7)).then(mark(tag)));
      const other = Promise.resolve(single.classify("postgresql", long("b1"), 8)).then(mark("b1"));
      const verdicts = await Promise.all([...flood, other]);
      expect(verdicts.every((v) => (v as { ok: boolean }).ok)).toBe(true);
      // Without lanes the thread's queue is first come, first served: b1 would finish last.
      expect(finished.indexOf("b1")).toBeLessThan(2);
    } finally {
      await single.close();
    }
  });

  it("refuses a statement over its limit without parsing it, naming the limit", () => {
    expect(guard.classify("sqlite", `SELECT '${"x".repeat(10_000)}'`)).toEqual({
      ok: false,
      rule: "too_large",
      reason: "The statement is 10009 characters long; statements longer than 10000 characters are refused.",
    });
  });
});
