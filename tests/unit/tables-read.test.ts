// The tables a statement reads, from the guard's parse trees: what health-aware results look up
// alerts for. Table-driven per dialect: joins, schemas, subqueries, CTE names (not tables),
// unions, and what cannot be read from a statement.

import { beforeAll, describe, expect, it } from "vitest";

import { loadGuard } from "../../src/connectors/guard/index.js";
import { TABLES_READ_MAX_CHARS, tablesRead } from "../../src/connectors/guard/tables-read.js";
import type { Dialect } from "../../src/connectors/types.js";

beforeAll(async () => {
  await loadGuard();
});

const names = (dialect: Dialect, sql: string) => tablesRead(dialect, sql)?.map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name)).sort() ?? null;

const COMMON: [string, string[]][] = [
  ["SELECT 1", []],
  ["SELECT * FROM orders", ["orders"]],
  ["SELECT * FROM shop.orders o JOIN customers c ON c.id = o.customer_id", ["shop.orders", "customers"]],
  ["SELECT * FROM a, b LEFT JOIN c ON 1 = 1", ["a", "b", "c"]],
  ["SELECT * FROM (SELECT * FROM inner_t) AS s", ["inner_t"]],
  ["SELECT * FROM t WHERE id IN (SELECT t_id FROM u)", ["t", "u"]],
  ["SELECT (SELECT max(x) FROM scalar_t) AS m", ["scalar_t"]],
  ["WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN items ON 1 = 1", ["orders", "items"]],
  ["SELECT id FROM a UNION ALL SELECT id FROM b", ["a", "b"]],
  ["SELECT * FROM orders o1 JOIN orders o2 ON o1.id = o2.id", ["orders"]],
  ["EXPLAIN SELECT * FROM orders", ["orders"]],
];

describe("tablesRead", () => {
  for (const dialect of ["postgresql", "mysql", "sqlite"] as const) {
    it.each(COMMON)(`${dialect}: %s`, (sql, expected) => {
      expect(names(dialect, sql)).toEqual([...expected].sort());
    });
  }

  it.each([
    ["postgresql", 'SELECT * FROM "Orders" JOIN Items ON true', ["Orders", "items"]],
    ["postgresql", "SELECT * FROM generate_series(1, 3) g JOIN t ON true", ["t"]],
    ["mysql", "SELECT * FROM `shop`.`Orders`", ["shop.Orders"]],
    ["sqlite", 'SELECT * FROM "Album" JOIN [Artist] USING (ArtistId)', ["Album", "Artist"]],
  ] as const)("%s: %s", (dialect, sql, expected) => {
    expect(names(dialect, sql)).toEqual([...expected].sort());
  });

  it("answers null for what does not parse and for statements past its length limit", () => {
    expect(tablesRead("postgresql", "SELEC nonsense")).toBeNull();
    expect(tablesRead("sqlite", "SELECT * FROM")).toBeNull();
    const long = `SELECT * FROM t WHERE x IN (${Array.from({ length: TABLES_READ_MAX_CHARS }, () => "1").join(",")})`;
    expect(tablesRead("mysql", long)).toBeNull();
  });
});
