// What a page of GET /api/audit costs on a large trail: one owner with RECORDS records over ten
// days, another with a tenth of that, a thousand small ones, in groups of GROUP records (as a
// busy writer leaves them; migration 0015). Each filter is read as Pulse reads it
// (listAuditRecords: the owner's groups newest first, on the index of the filter, until the
// page is whole); the time of the whole page, median of REPEATS. Then retention: batches of
// 10,000 groups deleted across the owners.
// Run: npx tsx bench/audit-pages.ts (RECORDS, REPEATS, GROUP), or npm run bench:audit.

import { listAuditRecords, pruneAuditRecords, type AuditFilter } from "../src/store/audit.js";
import { openStore } from "../src/store/client.js";
import { createPgDatabase } from "../tests/support/services.js";
import { machine, median } from "./lib.js";

const RECORDS = Number(process.env.RECORDS ?? 2_000_000);
const REPEATS = Number(process.env.REPEATS ?? 7);
const DAY = 86_400_000;
const PAGE = 100;
const GROUP = Number(process.env.GROUP ?? 25);

const database = await createPgDatabase("pulse_bench_audit_pages");
const store = await openStore({ databaseUrl: database.url });
try {
  await store.migrate();
  /** `count` records of `owner` (an SQL expression of the group's number i) over the ten days
   * before now, in groups of GROUP a few milliseconds apart. */
  const fill = (owner: string, count: number, connection: string, sqlText: string) =>
    database.query(
      `INSERT INTO audit_groups (owner_id, connection_id, source, outcome, first_at, last_at, at, sql, sql_length, sql_sha256, row_count, duration_ms, error_code, rule)
       SELECT ${owner}, ${connection}, 'query', 'ok', g.at, g.at + (${GROUP} - 1) * interval '1 millisecond',
         ARRAY(SELECT g.at + j * interval '1 millisecond' FROM generate_series(0, ${GROUP} - 1) j),
         array_fill('${sqlText}'::text, ARRAY[${GROUP}]), array_fill(${sqlText.length}, ARRAY[${GROUP}]), array_fill(NULL::text, ARRAY[${GROUP}]),
         array_fill(1, ARRAY[${GROUP}]), array_fill(1.5::float8, ARRAY[${GROUP}]), array_fill(NULL::text, ARRAY[${GROUP}]), array_fill(NULL::text, ARRAY[${GROUP}])
       FROM (SELECT i, now() - i * interval '10 days' / ${Math.ceil(count / GROUP)} AS at FROM generate_series(${Math.ceil(count / GROUP)}, 1, -1) i) g`,
    );
  await fill("1", RECORDS, "1 + i % 5", "SELECT track_id, name FROM track WHERE track_id = 42");
  await fill("2", RECORDS / 10, "9", "SELECT 1");
  await fill("100 + i % 1000", 10_000, "1", "SELECT 1");
  await database.query("VACUUM ANALYZE audit_groups");

  const now = Date.now();
  const cases: [string, Omit<AuditFilter, "limit">][] = [
    ["owner 1, latest page", { ownerId: 1 }],
    ["owner 1, to = 9 days ago", { ownerId: 1, to: new Date(now - 9 * DAY) }],
    ["owner 1, 9.5 to 9 days ago", { ownerId: 1, from: new Date(now - 9.5 * DAY), to: new Date(now - 9 * DAY) }],
    ["owner 1, connection 3, to = 9 days ago", { ownerId: 1, connectionId: 3, to: new Date(now - 9 * DAY) }],
    ["owner 2, to = 9 days ago", { ownerId: 2, to: new Date(now - 9 * DAY) }],
  ];

  console.log(`machine: ${machine()}; ${RECORDS.toLocaleString("en")} records of owner 1, ${(RECORDS / 10).toLocaleString("en")} of owner 2, 10,000 of 1,000 others, in groups of ${GROUP}; pages of ${PAGE}; median of ${REPEATS}`);
  console.log("| page | ms (listAuditRecords, whole page) |");
  console.log("|---|---:|");
  for (const [name, filter] of cases) {
    const times: number[] = [];
    for (let i = 0; i < REPEATS; i++) {
      const started = performance.now();
      await listAuditRecords(store.db, { ...filter, limit: PAGE });
      times.push(performance.now() - started);
    }
    console.log(`| ${name} | ${median(times).toFixed(2)} |`);
  }

  const prunes: string[] = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    const gone = await pruneAuditRecords(store.db, new Date(now - 9 * DAY), 10_000);
    prunes.push(`${gone} in ${Math.round(performance.now() - started)} ms`);
  }
  console.log(`retention, batches of 10,000 groups older than 9 days: ${prunes.join(", ")}`);
} finally {
  await store.close();
  await database.drop();
}
