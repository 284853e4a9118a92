// Layer 1 of the read-only guarantee: from the parse tree alone, decide whether one statement
// is a read we may send to a customer database (layer 2 then runs it read-only, with a timeout).

import { createLRU } from "lru.min";

import type { Dialect } from "../types.js";
import { classifyMysql, warmMysqlParser } from "./mysql.js";
import { classifyPostgres, isPostgresParserLoaded, loadPostgresParser } from "./postgres.js";
import { MAX_PAREN_DEPTH, parenNesting } from "./nesting.js";
import { classifySqlite, warmSqliteParser } from "./sqlite.js";
import { errorMessage, MAX_STATEMENT_LENGTH, refuse, refuseEmpty, refuseTooDeeplyNested, refuseTooLarge, type GuardVerdict } from "./verdict.js";

export type { GuardRule, GuardVerdict, ReadKind } from "./verdict.js";
export { MAX_STATEMENT_LENGTH } from "./verdict.js";
export { READ_ONLY_PRAGMAS } from "./sqlite-pragmas.js";
export { LegacyStringsError, MAX_LEGACY_STRINGS, missingColumnOf, quotedIdentifierAsString } from "./sqlite-dqs.js";

/** Call once at startup: loads PostgreSQL's parser (WASM) and warms the others. Idempotent. */
export async function loadGuard(): Promise<void> {
  if (!isPostgresParserLoaded()) await loadPostgresParser();
  warmMysqlParser();
  warmSqliteParser();
}

/** Verdicts of recent statements, per dialect. A verdict is a pure function of the dialect and
 * the exact text, and dashboards, monitoring and retried questions send the same statements
 * again and again: parsing is most of the guard's cost (tens of microseconds to milliseconds),
 * a lookup is well under one. Long statements are rare repeats and would crowd the memory. */
const recentVerdicts = createLRU<string, GuardVerdict>({ max: 2_000 });
const CACHED_STATEMENT_LENGTH = 4_096;

/** Synchronous once `loadGuard()` has resolved, and on the caller's thread: requests take
 * statement-guard.ts, which parses long statements in worker threads. Never throws for any
 * input: whatever cannot be analysed is refused. */
export function classifyStatement(dialect: Dialect, sql: string, maxChars = MAX_STATEMENT_LENGTH): GuardVerdict {
  if (sql.length > maxChars) return refuseTooLarge(sql.length, maxChars);
  let verdict = cachedVerdict(dialect, sql);
  if (verdict === undefined) {
    verdict = classifyUncached(dialect, sql);
    rememberVerdict(dialect, sql, verdict);
  }
  return verdict;
}

export const cachedVerdict = (dialect: Dialect, sql: string): GuardVerdict | undefined =>
  sql.length > CACHED_STATEMENT_LENGTH ? undefined : recentVerdicts.get(`${dialect}\0${sql}`);

/** Only for a verdict of the text alone: never one that depended on load (a parse timeout). */
export function rememberVerdict(dialect: Dialect, sql: string, verdict: GuardVerdict): void {
  if (sql.length <= CACHED_STATEMENT_LENGTH) recentVerdicts.set(`${dialect}\0${sql}`, verdict);
}

/** The parse and the rules, with no length limit and no cache. */
export function classifyUncached(dialect: Dialect, sql: string): GuardVerdict {
  if (dialect === "postgresql" && !isPostgresParserLoaded()) {
    throw new Error("loadGuard() must be awaited before classifying PostgreSQL statements");
  }
  if (sql.trim() === "") return refuseEmpty();
  try {
    switch (dialect) {
      case "postgresql":
        return classifyPostgres(sql);
      case "mysql":
      case "sqlite": {
        const { depth } = parenNesting(sql, dialect);
        if (depth > MAX_PAREN_DEPTH) return refuseTooDeeplyNested(depth, MAX_PAREN_DEPTH);
        return dialect === "mysql" ? classifyMysql(sql) : classifySqlite(sql);
      }
    }
  } catch (error) {
    // A stack overflow on absurd nesting, or a parser bug: fail closed.
    return refuse("guard_error", `The statement could not be analysed (${errorMessage(error)}), so it was refused.`);
  }
}
