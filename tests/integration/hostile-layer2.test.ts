// The hostile corpus against real databases: every statement is refused by the guard (layer 1),
// and, replayed with the guard switched off straight into the driver, every statement that
// layer 2 claims to stop leaves the database unchanged (checksums before and after).

import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { classifyStatement, loadGuard } from "../../src/connectors/guard/index.js";
import { openDriver } from "../../src/connectors/open.js";
import type { ConnectionTarget, Dialect, DialectDriver } from "../../src/connectors/types.js";
import { GUARD_FIXTURE, HOSTILE_CORPUS } from "../support/hostile-corpus.js";
import { createMariaDatabase, createPgDatabase, MARIADB, PG } from "../support/services.js";

const LIMITS = { maxRows: 100, maxBytes: 1_000_000, timeoutMs: 3000 };

interface Fixture {
  driver: DialectDriver;
  checksum(): Promise<string>;
  drop(): Promise<void>;
}

const base = { host: "", port: 0, database: "", username: "", password: "", ssl: false, connectTimeoutMs: 5000 };

async function postgresFixture(): Promise<Fixture> {
  const db = await createPgDatabase("pulse_hostile");
  for (const sql of GUARD_FIXTURE.postgresql) await db.query(sql);
  const target: ConnectionTarget = { ...base, dialect: "postgresql", host: PG.host, port: PG.port, database: db.name, username: PG.user };
  const driver = await openDriver(target, { maxConnections: 2, idleTimeoutMs: 10_000 });
  return {
    driver,
    async checksum() {
      const [rows] = await db.query<{ c: string }>(`SELECT
        (SELECT coalesce(string_agg(id || ':' || coalesce(v, 'NULL'), ',' ORDER BY id), '') FROM guard_target) || '|' ||
        (SELECT string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' ORDER BY n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) || '|' ||
        (SELECT last_value || ':' || is_called FROM guard_seq) AS c`);
      return rows!.c;
    },
    async drop() {
      await driver.close();
      await db.drop();
    },
  };
}

async function mysqlFixture(): Promise<Fixture> {
  const db = await createMariaDatabase("pulse_hostile");
  for (const sql of GUARD_FIXTURE.mysql) await db.query(sql);
  const target: ConnectionTarget = { ...base, dialect: "mysql", host: MARIADB.host, port: MARIADB.port, database: db.name, username: MARIADB.user };
  const driver = await openDriver(target, { maxConnections: 2, idleTimeoutMs: 10_000 });
  return {
    driver,
    async checksum() {
      const rows = await db.query<{ c: string }>(`SELECT CONCAT(
        (SELECT COALESCE(GROUP_CONCAT(id, ':', COALESCE(v, 'NULL') ORDER BY id), '') FROM guard_target), '|',
        (SELECT COALESCE(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME), '') FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE())) AS c`);
      return rows[0]!.c;
    },
    async drop() {
      await driver.close();
      await db.drop();
    },
  };
}

async function sqliteFixture(): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-hostile-"));
  const file = path.join(dir, "guard.sqlite");
  const setup = new Database(file);
  for (const sql of GUARD_FIXTURE.sqlite) setup.exec(sql);
  setup.close();
  const target: ConnectionTarget = { ...base, dialect: "sqlite", database: "guard.sqlite", filePath: file };
  const driver = await openDriver(target, { maxConnections: 1, idleTimeoutMs: 10_000 });
  return {
    driver,
    // The whole directory: the file and anything a statement might create beside it.
    async checksum() {
      return createHash("sha256").update(readFileSync(file)).digest("hex") + "|" + (await import("node:fs")).readdirSync(dir).sort().join(",");
    },
    async drop() {
      await driver.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fixtures: Record<Dialect, () => Promise<Fixture>> = { postgresql: postgresFixture, mysql: mysqlFixture, sqlite: sqliteFixture };

beforeAll(() => loadGuard());

describe.each(["postgresql", "mysql", "sqlite"] as const)("hostile corpus on %s", (dialect) => {
  const entries = HOSTILE_CORPUS.filter((e) => e.dialect === dialect);
  let fixture: Fixture;
  beforeAll(async () => {
    fixture = await fixtures[dialect]();
  });
  afterAll(async () => fixture?.drop());

  it("has a substantial corpus for this dialect", () => {
    expect(entries.length).toBeGreaterThanOrEqual(45);
  });

  it("refuses every statement at the guard, with its rule", () => {
    for (const entry of entries) {
      const verdict = classifyStatement(dialect, entry.sql);
      expect(verdict, entry.sql).toMatchObject({ ok: false, rule: entry.rule });
    }
  });

  it("changes nothing when the statements layer 2 stops are sent with the guard off", async () => {
    const before = await fixture.checksum();
    const stoppable = entries.filter((e) => e.layer2 === "stops");
    expect(stoppable.length).toBeGreaterThanOrEqual(15);
    for (const entry of stoppable) {
      await fixture.driver.query(entry.sql, LIMITS).catch(() => undefined);
      expect(await fixture.checksum(), entry.sql).toBe(before);
    }
    // The connection still answers reads afterwards: nothing poisoned the pool.
    const rows = await fixture.driver.query("SELECT count(*) FROM guard_target", LIMITS);
    expect(Number(rows.rows[0]![0])).toBe(2);
  });
});
