// Migration 0015 moves a trail of one row per record into groups (src/store/schema.ts,
// auditGroups): every record keeps every field and its order, and is read back by the
// `audit_records` view and GET /api/audit's query as before.

import { readMigrationFiles } from "drizzle-orm/migrator";
import { afterAll, describe, expect, it } from "vitest";

import { projectPath } from "../../src/paths.js";
import { listAuditRecords } from "../../src/store/audit.js";
import { openStore } from "../../src/store/client.js";
import { createPgDatabase } from "../support/services.js";

const dbs: Awaited<ReturnType<typeof createPgDatabase>>[] = [];
afterAll(async () => {
  for (const db of dbs) await db.drop();
});

const FIELDS = "at, owner_id, connection_id, source, api_key_id, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule";

describe("migration 0015 (audit records into groups)", () => {
  it("keeps every record with every field, splits a second's records in groups of 500, and reads them back in order", async () => {
    const db = await createPgDatabase("pulse_audit_groups");
    dbs.push(db);
    const migrations = readMigrationFiles({ migrationsFolder: projectPath("migrations") });
    const before = migrations.findIndex((m) => m.sql.some((s) => s.includes('CREATE TABLE "audit_groups"')));
    expect(before).toBeGreaterThan(0);
    await db.query('CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)');
    for (const m of migrations.slice(0, before)) {
      for (const statement of m.sql) await db.query(statement);
      await db.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, $2)", [m.hash, m.folderMillis]);
    }
    // 1,200 records of one owner, connection and source in one second (three groups); records
    // of other owners, keys and sources around them; a failure; every nullable field null and
    // not; text that array literals and COPY escape.
    await db.query(`
      INSERT INTO audit_records (${FIELDS})
      SELECT '2026-12-01T10:00:00.000Z'::timestamptz + (i % 1000) * interval '1 millisecond', 1, 7, 'query', NULL, 'SELECT ' || i, 8, NULL, i, i / 100.0, 'ok', NULL, NULL
      FROM generate_series(1, 1200) i`);
    await db.query(
      `INSERT INTO audit_records (${FIELDS}) VALUES
        ('2026-12-01T10:00:00.500Z', 1, 7, 'ask', NULL, $1, 4096000, 'ab12', NULL, 3.25, 'refused', 'sql_refused', 'not_read_only'),
        ('2026-12-01T10:00:01.000Z', 1, 7, 'query', 42, 'NULL', 4, NULL, 0, 0, 'ok', NULL, NULL),
        ('2026-12-01T09:59:59.999Z', 2, 8, 'monitor', NULL, 'SELECT 2', 8, NULL, 1, 1, 'timeout', 'query_timeout', NULL)`,
      ['SELECT "a\\b", \'{x,y}\'\t\n\r'],
    );
    const expected = await db.query(`SELECT ${FIELDS} FROM audit_records ORDER BY at, id`);

    const store = await openStore({ databaseUrl: db.url });
    try {
      await store.migrate();
      expect(await db.query(`SELECT ${FIELDS} FROM audit_records ORDER BY at, id`)).toEqual(expected);
      expect(await db.query("SELECT owner_id, source, outcome, cardinality(at) AS n FROM audit_groups ORDER BY id")).toEqual([
        { owner_id: 1, source: "query", outcome: "ok", n: 500 },
        { owner_id: 1, source: "query", outcome: "ok", n: 500 },
        { owner_id: 1, source: "query", outcome: "ok", n: 200 },
        { owner_id: 1, source: "ask", outcome: "refused", n: 1 },
        { owner_id: 1, source: "query", outcome: "ok", n: 1 },
        { owner_id: 2, source: "monitor", outcome: "timeout", n: 1 },
      ]);
      // Pages as GET /api/audit reads them: owner 1's 1,202 records, newest first, then by id.
      const pages: number[][] = [];
      let cursor: number | undefined;
      do {
        const page = await listAuditRecords(store.db, { ownerId: 1, limit: 100, before: cursor });
        pages.push(page.map((r) => r.id));
        cursor = page.length === 100 ? page.at(-1)!.id : undefined;
      } while (cursor !== undefined);
      const ids = (await db.query<{ id: string }>("SELECT id FROM audit_records WHERE owner_id = 1 ORDER BY at DESC, id DESC")).map((r) => Number(r.id));
      expect(pages.flat()).toEqual(ids);
      expect(ids).toHaveLength(1202);
      const [refused] = await listAuditRecords(store.db, { ownerId: 1, outcome: "refused", limit: 10 });
      expect(refused).toMatchObject({ source: "ask", sql: 'SELECT "a\\b", \'{x,y}\'\t\n\r', sqlLength: 4096000, sqlSha256: "ab12", rowCount: null, durationMs: 3.25, rule: "not_read_only" });
    } finally {
      await store.close();
    }
  });

  it("pages a trail whose times have microseconds (one Pulse did not write) in the view's order, each record once", async () => {
    const db = await createPgDatabase("pulse_audit_groups");
    dbs.push(db);
    const store = await openStore({ databaseUrl: db.url });
    try {
      await store.migrate();
      // Two connections' groups in one second, their records 0.3 ms apart: within a millisecond,
      // the newer record has the lower id.
      await db.query(`
        INSERT INTO audit_groups (owner_id, connection_id, source, outcome, first_at, last_at, at, sql, sql_length, row_count, duration_ms)
        SELECT 1, c, 'query', 'ok', min(t), max(t), array_agg(t ORDER BY i), array_agg('S ' || c || ' ' || i ORDER BY i), array_agg(8), array_agg(i ORDER BY i), array_agg(1.0)
        FROM generate_series(1, 2) c, generate_series(0, 59) i, LATERAL (SELECT '2026-12-01T10:00:00Z'::timestamptz + (i % 6) * interval '1 ms' + (2 - c) * interval '0.3 ms' AS t) x
        GROUP BY c ORDER BY c`);
      const ids = (await db.query<{ id: string }>("SELECT id FROM audit_records WHERE owner_id = 1 ORDER BY at DESC, id DESC")).map((r) => Number(r.id));
      for (const limit of [7, 100]) {
        const listed: number[] = [];
        let cursor: number | undefined;
        do {
          const page = await listAuditRecords(store.db, { ownerId: 1, limit, before: cursor });
          listed.push(...page.map((r) => r.id));
          cursor = page.length === limit ? page.at(-1)!.id : undefined;
        } while (cursor !== undefined);
        expect(listed, `${limit} a page`).toEqual(ids);
      }
    } finally {
      await store.close();
    }
  });
});
