// What a page of GET /api/audit costs the metadata store on a large trail: one owner with
// RECORDS records over ten days, another with a tenth of that, a thousand small ones. Each filter
// is run as Pulse runs it (listAuditRecords: newest first by time, each index read in page
// order) and as it ran before migration 0009 (newest first by id on the owner's key, time
// filtered as read), in the same run, on the same table; execution time from EXPLAIN ANALYZE,
// median of REPEATS. Then retention: batches of 10,000 deleted across the owners.
// Run: npx tsx bench/audit-pages.ts (RECORDS, REPEATS), or npm run bench:audit.

import { listAuditRecords, pruneAuditRecords, type AuditFilter } from "../src/store/audit.js";
import { openStore } from "../src/store/client.js";
import { createPgDatabase } from "../tests/support/services.js";
import { machine, median } from "./lib.js";

const RECORDS = Number(process.env.RECORDS ?? 2_000_000);
const REPEATS = Number(process.env.REPEATS ?? 7);
const DAY = 86_400_000;
const PAGE = 100;

const database = await createPgDatabase("pulse_bench_audit_pages");
const store = await openStore({ databaseUrl: database.url });
try {
  await store.migrate();
  const fill = (owner: string, count: number, connection: string, sqlText: string) =>
    database.query(
      `INSERT INTO audit_records (at, owner_id, connection_id, source, sql, sql_length, row_count, duration_ms, outcome)
       SELECT now() - i * interval '10 days' / ${count}, ${owner}, ${connection}, 'query', '${sqlText}', ${sqlText.length}, 1, 1.5, 'ok'
       FROM generate_series(${count}, 1, -1) i`,
    );
  await fill("1", RECORDS, "1 + i % 5", "SELECT track_id, name FROM track WHERE track_id = 42");
  await fill("2", RECORDS / 10, "9", "SELECT 1");
  await fill("100 + i % 1000", 10_000, "1", "SELECT 1");
  await database.query("VACUUM ANALYZE audit_records");

  const now = Date.now();
  const cases: [string, Omit<AuditFilter, "limit">][] = [
    ["owner 1, latest page", { ownerId: 1 }],
    ["owner 1, to = 9 days ago", { ownerId: 1, to: new Date(now - 9 * DAY) }],
    ["owner 1, 9.5 to 9 days ago", { ownerId: 1, from: new Date(now - 9.5 * DAY), to: new Date(now - 9 * DAY) }],
    ["owner 1, connection 3, to = 9 days ago", { ownerId: 1, connectionId: 3, to: new Date(now - 9 * DAY) }],
    ["owner 2, to = 9 days ago", { ownerId: 2, to: new Date(now - 9 * DAY) }],
  ];

  const executionMs = async (text: string, params: unknown[]) => {
    const rows = await database.query<{ "QUERY PLAN": [{ "Execution Time": number }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params);
    return rows[0]!["QUERY PLAN"][0]["Execution Time"];
  };
  /** The statement before migration 0009: newest first by id, the window a filter. */
  const byId = (f: Omit<AuditFilter, "limit">): [string, unknown[]] => {
    const where = ["owner_id = $1"];
    const params: unknown[] = [f.ownerId];
    if (f.connectionId !== undefined) where.push(`connection_id = $${params.push(f.connectionId)}`);
    if (f.from) where.push(`at >= $${params.push(f.from.toISOString())}`);
    if (f.to) where.push(`at <= $${params.push(f.to.toISOString())}`);
    return [`SELECT * FROM audit_records WHERE ${where.join(" AND ")} ORDER BY id DESC LIMIT ${PAGE}`, params];
  };

  console.log(`machine: ${machine()}; ${RECORDS.toLocaleString("en")} records of owner 1, ${(RECORDS / 10).toLocaleString("en")} of owner 2, 10,000 of 1,000 others; pages of ${PAGE}; median of ${REPEATS} (ms of execution)`);
  console.log("| page | before 0009 (by id), ms | today (by time), ms |");
  console.log("|---|---:|---:|");
  for (const [name, filter] of cases) {
    const today = listAuditRecords(store.db, { ...filter, limit: PAGE }).toSQL();
    const before = byId(filter);
    const b: number[] = [];
    const t: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      b.push(await executionMs(...before));
      t.push(await executionMs(today.sql, today.params));
    }
    console.log(`| ${name} | ${median(b).toFixed(2)} | ${median(t).toFixed(2)} |`);
  }

  const prunes: string[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const gone = await pruneAuditRecords(store.db, new Date(now - 9 * DAY), 10_000);
    prunes.push(`${gone} in ${Math.round(performance.now() - started)} ms`);
  }
  console.log(`retention, batches of 10,000 older than 9 days: ${prunes.join(", ")}`);
} finally {
  await store.close();
  await database.drop();
}
