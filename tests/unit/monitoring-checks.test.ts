// The pure parts of the checks: quoting per dialect, the statements each check sends (one
// each), reading row counts from catalog rows, timestamps, schema diffs and fixed bounds.

import { beforeAll, describe, expect, it } from "vitest";

import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";
import type { Dialect } from "../../src/connectors/types.js";
import { checkKey } from "../../src/monitoring/check-config.js";
import { freshnessStatement, timestampOf } from "../../src/monitoring/checks/freshness.js";
import { judgeFixedBounds } from "../../src/monitoring/checks/judging.js";
import { nullRateStatement } from "../../src/monitoring/checks/null-rate.js";
import { changesIn, describeDiff, diffColumns } from "../../src/monitoring/checks/schema-drift.js";
import { qualifiedName, quoteIdent, quoteLiteral } from "../../src/connectors/sql-text.js";
import { numberOf } from "../../src/monitoring/checks/types.js";
import { rowCountOf, volumeStatement } from "../../src/monitoring/checks/volume.js";

beforeAll(() => loadGuard());

describe("quoting", () => {
  it.each<[Dialect, string, string]>([
    ["postgresql", "orders", '"orders"'],
    ["postgresql", 'we"ird', '"we""ird"'],
    ["postgresql", "Mixed Case", '"Mixed Case"'],
    ["sqlite", 'a"b"c', '"a""b""c"'],
    ["mysql", "orders", "`orders`"],
    ["mysql", "we`ird", "`we``ird`"],
    ["mysql", 'dq"ok', '`dq"ok`'],
  ])("%s identifier %j is %s", (dialect, name, quoted) => {
    expect(quoteIdent(dialect, name)).toBe(quoted);
  });

  it.each<[Dialect, string, string]>([
    ["postgresql", "it's", "'it''s'"],
    ["postgresql", "back\\slash", "'back\\slash'"],
    ["sqlite", "it's", "'it''s'"],
    ["mysql", "it's", "'it''s'"],
    ["mysql", "back\\' or 1=1 -- ", "'back\\\\'' or 1=1 -- '"],
  ])("%s literal %j is %s", (dialect, value, quoted) => {
    expect(quoteLiteral(dialect, value)).toBe(quoted);
  });

  it("refuses a name with a NUL character", () => {
    expect(() => quoteIdent("postgresql", "a\u0000b")).toThrow(/NUL/);
    expect(() => quoteLiteral("mysql", "a\u0000b")).toThrow(/NUL/);
  });

  it("qualifies with the schema where there is one", () => {
    expect(qualifiedName("postgresql", "public", "t")).toBe('"public"."t"');
    expect(qualifiedName("mysql", "shop", "t")).toBe("`shop`.`t`");
    expect(qualifiedName("sqlite", null, "t")).toBe('"t"');
  });
});

const hostile = ['x"; DROP TABLE t; --', "x`; DROP TABLE t; --", "x'); DELETE FROM t; --"];

describe("statements", () => {
  it.each<Dialect>(["postgresql", "mysql", "sqlite"])("on %s, are one read the guard accepts, whatever the names", (dialect) => {
    for (const name of hostile) {
      const statements = [
        volumeStatement(dialect, dialect === "sqlite" ? null : "s", name, 100_000),
        freshnessStatement(dialect, dialect === "sqlite" ? null : name, name, name),
        nullRateStatement(dialect, null, name, name, 1000, name),
      ];
      for (const sql of statements) expect(classifyStatement(dialect, sql), sql).toMatchObject({ ok: true });
    }
  });

  it("count exactly only below the bound (or where a primary counts no live rows), and read the estimate otherwise (PostgreSQL)", () => {
    const sql = volumeStatement("postgresql", "public", "orders", 50_000);
    expect(sql).toContain(
      "CASE WHEN e.reltuples < 50000 OR (e.live_tuples = 0 AND NOT pg_is_in_recovery()) THEN (SELECT count(*) FROM (SELECT 1 FROM \"public\".\"orders\" LIMIT 50001) bounded) END",
    );
    expect(sql).toContain("pg_stat_user_tables");
    expect(sql).toContain("n.nspname = 'public' AND c.relname = 'orders'");
  });

  it("read the replica lag in the freshness statement on PostgreSQL only", () => {
    expect(freshnessStatement("postgresql", "public", "t", "ts")).toContain("pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()");
    expect(freshnessStatement("mysql", "db", "t", "ts")).toBe("SELECT max(`ts`) AS latest FROM `db`.`t`");
    expect(freshnessStatement("sqlite", null, "t", "ts")).toBe('SELECT max("ts") AS latest FROM "t"');
  });

  it("sample the newest rows for a null rate when asked", () => {
    expect(nullRateStatement("postgresql", "public", "t", "email", 100, "created_at")).toBe(
      'SELECT count(*) AS total, count("email") AS non_null FROM (SELECT "email" FROM "public"."t" WHERE "created_at" IS NOT NULL ORDER BY "created_at" DESC LIMIT 100) sample',
    );
  });
});

describe("cells read as numbers", () => {
  it("reads decimals and exponents, and nothing else", () => {
    expect(["42", "-1.5", "+.5", "1.", "2e3", "1.5E-2"].map(numberOf)).toEqual([42, -1.5, 0.5, 1, 2000, 0.015]);
    expect(["", ".", "1.2.3", "0x10", "1e", "12 apples", "Infinity"].map(numberOf)).toEqual([null, null, null, null, null, null, null]);
  });

  it("turns down a long run of digits at once: a check's cell is anyone's who writes the table", () => {
    // Each took time growing with the square of its length (200,000 digits: minutes of the event loop).
    expect(numberOf(`${"1".repeat(200_000)}x`)).toBeNull();
    expect(numberOf(`${"1".repeat(399)}x`)).toBeNull();
    expect(numberOf("1".repeat(401))).toBeNull();
  });
});

describe("row counts from catalog rows", () => {
  it.each<[string, Dialect, Record<string, any>, { rows: number; method: string } | null]>([
    ["a small table counted exactly", "postgresql", { reltuples: 10, live_tuples: 12, replica: false, bounded_count: 11 }, { rows: 11, method: "exact" }],
    ["never analyzed (reltuples -1) but small", "postgresql", { reltuples: -1, live_tuples: 0, replica: false, bounded_count: 7 }, { rows: 7, method: "exact" }],
    ["big on a primary: n_live_tup", "postgresql", { reltuples: 2e6, live_tuples: 2.1e6, replica: false, bounded_count: null }, { rows: 2.1e6, method: "n_live_tup" }],
    ["big on a replica: reltuples, not the standby's counters", "postgresql", { reltuples: 2e6, live_tuples: 0, replica: true, bounded_count: null }, { rows: 2e6, method: "reltuples" }],
    ["stale small estimate, bound hit: the estimate, at least the bound", "postgresql", { reltuples: 10, live_tuples: 0, replica: true, bounded_count: 1001 }, { rows: 1001, method: "reltuples" }],
    ["never analyzed and big on a replica: nothing trustworthy", "postgresql", { reltuples: -1, live_tuples: 0, replica: true, bounded_count: 1001 }, null],
    ["MySQL small", "mysql", { estimate: 9, bounded_count: 10 }, { rows: 10, method: "exact" }],
    ["MySQL big", "mysql", { estimate: 5e6, bounded_count: null }, { rows: 5e6, method: "table_rows" }],
    ["MySQL bigints as strings", "mysql", { estimate: "5000000", bounded_count: null }, { rows: 5e6, method: "table_rows" }],
    ["SQLite always exact", "sqlite", { bounded_count: 123456 }, { rows: 123456, method: "exact" }],
  ])("%s", (_name, dialect, row, expected) => {
    expect(rowCountOf(dialect, row, 1000)).toEqual(expected);
  });
});

describe("timestamps", () => {
  const t = Date.UTC(2025, 0, 6, 9, 30, 15, 250);
  it.each<[unknown, number | null]>([
    ["2025-01-06T09:30:15.250Z", t],
    ["2025-01-06T10:30:15.250+01:00", t],
    ["2025-01-06T09:30:15.250", t], // no zone: UTC
    ["2025-01-06 09:30:15.250", t], // SQLite / DATETIME text
    ["2025-01-06", Date.UTC(2025, 0, 6)],
    [t / 1000, t], // epoch seconds
    [t, t], // epoch milliseconds
    [t * 1000, t], // epoch microseconds (not a time 50,000 years ahead)
    [t * 1e6, t], // epoch nanoseconds
    [t / 86_400_000 + 2_440_587.5, t], // Julian days (SQLite's julianday()), not a few weeks of 1970
    [String(t / 86_400_000 + 2_440_587.5), t],
    [1_999_999, 1_999_999_000], // epoch seconds outside Julian days' range
    [-2_500_000, -2_500_000_000],
    ["2025-01-06 09:30:15.250+00", t], // PostgreSQL's text of a timestamptz, an hour-only offset
    ["2025-01-06 14:30:15.250+05", t],
    [String(t / 1000), t],
    [null, null],
    ["not a time", null],
    [true, null],
  ])("%j is %s", (cell, ms) => {
    expect(timestampOf(cell as never)).toBe(ms);
  });

  // A check's `timezone` says what zone values without one were written in; values with one,
  // and epoch numbers, are instants whatever it says.
  it.each<[unknown, string, string]>([
    ["2026-12-06 09:25:00", "America/New_York", "2026-12-06T14:25:00.000Z"],
    ["2026-07-01T12:00:00.5", "America/New_York", "2026-07-01T16:00:00.500Z"],
    ["2026-07-01", "America/New_York", "2026-07-01T04:00:00.000Z"],
    ["2026-01-01T00:00:00", "Asia/Kolkata", "2025-12-31T18:30:00.000Z"],
    ["2026-03-08T02:30:00", "America/New_York", "2026-03-08T07:30:00.000Z"], // skipped: as 03:30 EDT
    ["2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00.000Z"], // repeated: the first, EDT
    ["2026-11-01T00:59:59", "America/New_York", "2026-11-01T04:59:59.000Z"],
    ["2026-11-01T02:00:00", "America/New_York", "2026-11-01T07:00:00.000Z"],
    ["2026-07-01T12:00:00Z", "America/New_York", "2026-07-01T12:00:00.000Z"],
    ["2026-07-01 12:00:00+02", "America/New_York", "2026-07-01T10:00:00.000Z"],
    [Date.UTC(2026, 6, 1) / 1000, "America/New_York", "2026-07-01T00:00:00.000Z"],
  ])("%j in %s is %s", (cell, zone, iso) => {
    expect(new Date(timestampOf(cell as never, zone)!).toISOString()).toBe(iso);
  });
});

describe("schema diffs", () => {
  const before = [
    { name: "id", type: "integer", nullable: false },
    { name: "email", type: "text", nullable: true },
    { name: "total", type: "numeric", nullable: true },
  ];
  it("names added, removed, retyped and nullability changes", () => {
    const after = [
      { name: "id", type: "bigint", nullable: false },
      { name: "email", type: "text", nullable: false },
      { name: "created_at", type: "timestamptz", nullable: true },
    ];
    const diff = diffColumns(before, after);
    expect(changesIn(diff)).toBe(4);
    expect(describeDiff(diff)).toBe("added created_at (timestamptz), removed total (numeric), retyped id from integer to bigint, email became NOT NULL");
  });
  it("names both changes of a column retyped and made NOT NULL at once", () => {
    const diff = diffColumns(before, [before[0]!, before[1]!, { name: "total", type: "bigint", nullable: false }]);
    expect(changesIn(diff)).toBe(2);
    expect(describeDiff(diff)).toBe("retyped total from numeric to bigint, total became NOT NULL");
  });
  it("sees no change in the same columns reordered", () => {
    expect(changesIn(diffColumns(before, [...before].reverse()))).toBe(0);
  });
});

describe("fixed bounds", () => {
  it.each<[number, number | undefined, number | undefined, "pass" | "fail", string]>([
    [5, 1, 10, "pass", "rows 5 is within the limit (1–10)"],
    [0, 1, undefined, "fail", "rows 0 is outside the limit (at least 1)"],
    [11, undefined, 10, "fail", "rows 11 is outside the limit (at most 10)"],
    [10, undefined, 10, "pass", "rows 10 is within the limit (at most 10)"],
  ])("%d against [%s, %s] %s", (value, min, max, status, message) => {
    expect(judgeFixedBounds(value, min, max, "rows")).toMatchObject({ status, message, lower: min ?? null, upper: max ?? null });
  });
});

describe("check keys", () => {
  it("name one check per kind, or per column and name where a table has several", () => {
    expect(checkKey({ kind: "volume" })).toBe("volume");
    expect(checkKey({ kind: "freshness", column: "ts" })).toBe("freshness:ts");
    expect(checkKey({ kind: "null_rate", column: "email" })).toBe("null_rate:email");
    expect(checkKey({ kind: "custom_sql", name: "neg", sql: "SELECT 1", max: 0 })).toBe("custom_sql:neg");
  });
});
