// Every Spider dev gold query (643, shared/data/spider_dev) passes the SQLite guard and returns
// through the guarded connector the same rows as sqlite3 itself (Python's sqlite3, which keeps
// SQLite's legacy double-quoted strings; see src/connectors/guard/sqlite-dqs.ts).

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createBudget } from "../../src/connectors/budget.js";
import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";
import { GuardedConnector } from "../../src/connectors/guarded.js";
import { openDriver } from "../../src/connectors/open.js";
import type { Cell } from "../../src/connectors/types.js";

const shared = (p: string) => fileURLToPath(new URL(`../../../shared/data/${p}`, import.meta.url));
const gold = readFileSync(shared("spider_dev/spider_data/dev_gold.sql"), "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => {
    const tab = line.lastIndexOf("\t");
    return { sql: line.slice(0, tab).trim(), db: line.slice(tab + 1).trim() };
  });
const dbPath = (db: string) => shared(`spiderman/database_sqlite/${db}/${db}.sqlite`);

const connectors = new Map<string, GuardedConnector>();
let reference: ({ rows: unknown[][] } | { error: string })[];

beforeAll(async () => {
  await loadGuard();
  const input = JSON.stringify(gold.map((g) => [dbPath(g.db), g.sql]));
  const script = fileURLToPath(new URL("../support/sqlite3-reference.py", import.meta.url));
  reference = JSON.parse(execFileSync("python3", [script], { input, maxBuffer: 256 * 1024 * 1024 }).toString());
  for (const db of new Set(gold.map((g) => g.db))) {
    const driver = await openDriver(
      { dialect: "sqlite", host: "", port: 0, database: `${db}.sqlite`, username: "", password: "", ssl: false, filePath: dbPath(db), connectTimeoutMs: 10_000 },
      { maxConnections: 1, idleTimeoutMs: 60_000 },
    );
    connectors.set(db, new GuardedConnector(0, 0, db, driver, { maxRows: 100_000, maxBytes: 100_000_000, timeoutMs: 20_000 }, createBudget({ concurrency: 1, maxWaiting: 1, perMinute: 1_000_000, maxWaitMs: 1000 })));
  }
}, 120_000);
afterAll(async () => {
  for (const c of connectors.values()) await c.close();
});

const key = (row: unknown[]) => JSON.stringify(row);
const canonical = (rows: unknown[][], ordered: boolean) => {
  const text = rows.map((row) => row.map((v) => (typeof v === "number" ? Number(v.toPrecision(12)) : v)));
  return ordered ? text.map(key) : text.map(key).sort();
};

describe("Spider dev gold queries on SQLite", () => {
  it("has all 643 questions", () => {
    expect(gold).toHaveLength(643);
  });

  it("accepts every gold query at the guard", () => {
    const refused = gold.filter((g) => !classifyStatement("sqlite", g.sql).ok);
    expect(refused).toEqual([]);
  });

  it("returns the rows sqlite3 returns, for every gold query", async () => {
    const mismatches: string[] = [];
    for (const [i, g] of gold.entries()) {
      const expected = reference[i]!;
      expect("rows" in expected, `sqlite3 itself failed on ${g.sql}`).toBe(true);
      const result = await connectors.get(g.db)!.query(g.sql);
      const ordered = /\border\s+by\b/i.test(g.sql);
      const got = canonical(result.rows as Cell[][], ordered);
      const want = canonical((expected as { rows: unknown[][] }).rows, ordered);
      if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${g.db}: ${g.sql}`);
    }
    expect(mismatches).toEqual([]);
  }, 300_000);
});
