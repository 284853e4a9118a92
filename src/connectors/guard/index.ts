// Layer 1 of the read-only guarantee: from the parse tree alone, decide whether one statement
// is a read we may send to a customer database (layer 2 then runs it read-only, with a timeout).

import { createLRU } from "lru.min";

import type { Dialect } from "../types.js";
import { classifyMysql, warmMysqlParser } from "./mysql.js";
import { classifyPostgres, isPostgresParserLoaded, loadPostgresParser } from "./postgres.js";
import { classifySqlite, warmSqliteParser } from "./sqlite.js";
import { errorMessage, MAX_STATEMENT_LENGTH, refuse, refuseEmpty, refuseTooLarge, type GuardVerdict } from "./verdict.js";

export type { GuardRule, GuardVerdict, ReadKind } from "./verdict.js";
export { MAX_STATEMENT_LENGTH } from "./verdict.js";
export { READ_ONLY_PRAGMAS } from "./sqlite.js";
export { missingColumnOf, quotedIdentifierAsString } from "./sqlite-dqs.js";

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

/** Synchronous once `loadGuard()` has resolved. Never throws for any input: whatever cannot
 * be analysed is refused. */
export function classifyStatement(dialect: Dialect, sql: string): GuardVerdict {
  if (sql.length > CACHED_STATEMENT_LENGTH) return classifyUncached(dialect, sql);
  const key = `${dialect}\0${sql}`;
  let verdict = recentVerdicts.get(key);
  if (verdict === undefined) {
    verdict = classifyUncached(dialect, sql);
    recentVerdicts.set(key, verdict);
  }
  return verdict;
}

function classifyUncached(dialect: Dialect, sql: string): GuardVerdict {
  if (dialect === "postgresql" && !isPostgresParserLoaded()) {
    throw new Error("loadGuard() must be awaited before classifying PostgreSQL statements");
  }
  if (sql.length > MAX_STATEMENT_LENGTH) return refuseTooLarge(sql.length);
  if (sql.trim() === "") return refuseEmpty();
  try {
    switch (dialect) {
      case "postgresql":
        return classifyPostgres(sql);
      case "mysql":
        return classifyMysql(sql);
      case "sqlite":
        return classifySqlite(sql);
    }
  } catch (error) {
    // A stack overflow on absurd nesting, or a parser bug: fail closed.
    return refuse("guard_error", `The statement could not be analysed (${errorMessage(error)}), so it was refused.`);
  }
}
