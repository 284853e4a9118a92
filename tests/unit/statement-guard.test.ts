// The guard as requests use it (statement-guard.ts): a statement parsed in a worker thread gets
// the verdict it gets inline, a long statement past the limit is refused unparsed, and a short
// one never leaves the caller's thread; one user's long statements are analysed one at a time.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { classifyUncached, loadGuard } from "../../src/connectors/guard/index.js";
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

  it("analyses one long statement of a user at a time, and tells a second to wait, while others' go on", async () => {
    const first = guard.classify("sqlite", padded("SELECT 'user 7, first'"), 7);
    await expect(Promise.resolve().then(() => guard.classify("sqlite", padded("SELECT 'user 7, second'"), 7))).rejects.toMatchObject({ code: "rate_limited" });
    expect(await guard.classify("sqlite", padded("SELECT 'user 8'"), 8)).toEqual({ ok: true, kind: "select" });
    expect(await first).toEqual({ ok: true, kind: "select" });
    // Done with the first: the user's next one is analysed.
    expect(await guard.classify("sqlite", padded("SELECT 'user 7, third'"), 7)).toEqual({ ok: true, kind: "select" });
  });

  it("refuses a statement over its limit without parsing it, naming the limit", () => {
    expect(guard.classify("sqlite", `SELECT '${"x".repeat(10_000)}'`)).toEqual({
      ok: false,
      rule: "too_large",
      reason: "The statement is 10009 characters long; statements longer than 10000 characters are refused.",
    });
  });
});
