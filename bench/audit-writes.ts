// What writing one audit record costs, away from any HTTP load: the metadata PostgreSQL's CPU
// (every backend of the bench's database, from /proc) and Pulse's own (this process), per
// record, for batches of 500 records in the mix of bench/audit.ts. Three ways, interleaved in
// rounds, each into its own table: the indexes of migration 0003 written by the INSERT ...
// SELECT FROM unnest(arrays) Pulse used first, migration 0007's indexes by COPY, and today's
// indexes by COPY (appendAuditRecords, what Pulse runs). Autovacuum is off on the three tables
// so that it does not land on one round and not another.
// Run: npx tsx bench/audit-writes.ts (ROUNDS, BATCHES), or npm run bench:audit with bench/audit.ts.

import { sql } from "drizzle-orm";

import { appendAuditRecords, type NewAuditRecord } from "../src/store/audit.js";
import { openStore, type Store } from "../src/store/client.js";
import { createPgDatabase, pgAdmin } from "../tests/support/services.js";
import { cpuMs, machine, median } from "./lib.js";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BATCHES = Number(process.env.BATCHES ?? 100);
const BATCH_ROWS = 500;

const STATEMENTS = [
  "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42",
  "SELECT a.title, ar.name AS artist FROM album a JOIN artist ar ON ar.artist_id = a.artist_id WHERE a.album_id BETWEEN 10 AND 20 ORDER BY a.title LIMIT 1000",
  `WITH sales AS (SELECT i.billing_country, sum(il.unit_price * il.quantity) AS total FROM invoice i JOIN invoice_line il USING (invoice_id) GROUP BY 1)\n${"SELECT billing_country, total FROM sales ORDER BY total DESC LIMIT 25 -- report\n".repeat(8)}`,
  "DELETE FROM track",
];
const MIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3];

function batch(): NewAuditRecord[] {
  return Array.from({ length: BATCH_ROWS }, (_, i) => {
    const kind = MIX[i % MIX.length]!;
    const refused = kind === 3;
    return {
      at: new Date(),
      ownerId: 1 + (i % 7),
      connectionId: 1 + (i % 13),
      source: "query",
      sql: STATEMENTS[kind]!,
      sqlLength: STATEMENTS[kind]!.length,
      sqlSha256: null,
      rowCount: refused ? null : 1,
      durationMs: 1.23,
      outcome: refused ? "refused" : "ok",
      errorCode: refused ? "sql_refused" : null,
      rule: refused ? "not_read_only" : null,
    };
  });
}

/** The first writer (commit 34a4e42's insertAuditRecords), into `table`. */
async function insertByUnnest(store: Store, table: string, records: NewAuditRecord[]): Promise<void> {
  const numbers = (pick: (r: NewAuditRecord) => number | null | undefined) => sql.param(`{${records.map((r) => pick(r) ?? "NULL").join(",")}}`);
  const texts = (pick: (r: NewAuditRecord) => string | null | undefined) => sql.param(records.map((r) => pick(r) ?? null));
  await store.db.execute(sql`
    INSERT INTO ${sql.identifier(table)} (at, owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule)
    SELECT to_timestamp(at_ms / 1000), owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule
    FROM unnest(
      ${numbers((r) => r.at.getTime())}::double precision[], ${numbers((r) => r.ownerId)}::integer[], ${numbers((r) => r.connectionId)}::integer[],
      ${texts((r) => r.source)}::text[], ${texts((r) => r.sql)}::text[], ${numbers((r) => r.sqlLength)}::integer[],
      ${texts((r) => r.sqlSha256)}::text[], ${numbers((r) => r.rowCount)}::integer[], ${numbers((r) => r.durationMs)}::double precision[],
      ${texts((r) => r.outcome)}::text[], ${texts((r) => r.errorCode)}::text[], ${texts((r) => r.rule)}::text[]
    ) AS r(at_ms, owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule)`);
}

const database = await createPgDatabase("pulse_bench_audit_writes");
const store = await openStore({ databaseUrl: database.url });
try {
  await store.migrate();
  // Migration 0003's table: an id key and four full btrees.
  await store.db.execute(sql.raw(`
    CREATE TABLE audit_records_0003 (LIKE audit_records INCLUDING DEFAULTS INCLUDING IDENTITY);
    ALTER TABLE audit_records_0003 ADD PRIMARY KEY (id);
    CREATE INDEX ON audit_records_0003 (owner_id, id);
    CREATE INDEX ON audit_records_0003 (owner_id, connection_id, id);
    CREATE INDEX ON audit_records_0003 (owner_id, outcome, id);
    CREATE INDEX ON audit_records_0003 (at);
    CREATE TABLE audit_records_0007 (LIKE audit_records INCLUDING DEFAULTS INCLUDING IDENTITY);
    ALTER TABLE audit_records_0007 ADD PRIMARY KEY (owner_id, id);
    CREATE INDEX ON audit_records_0007 (connection_id, owner_id, id);
    CREATE INDEX ON audit_records_0007 (owner_id, outcome, id) WHERE outcome <> 'ok';
    CREATE INDEX ON audit_records_0007 (at);
    ALTER TABLE audit_records SET (autovacuum_enabled = false);
    ALTER TABLE audit_records_0003 SET (autovacuum_enabled = false);
    ALTER TABLE audit_records_0007 SET (autovacuum_enabled = false);`));
  const into0007: Pick<Store, "copyRows"> = { copyRows: (_, columns, rows) => store.copyRows("audit_records_0007", columns, rows) };

  const ways: [string, (records: NewAuditRecord[]) => Promise<void>][] = [
    ["0003 indexes (id key + 4 btrees), INSERT ... unnest (the first writer)", (r) => insertByUnnest(store, "audit_records_0003", r)],
    ["0007 indexes (time alone), COPY", (r) => appendAuditRecords(into0007, r)],
    ["today's indexes (0009: owner and time), COPY (appendAuditRecords)", (r) => appendAuditRecords(store, r)],
  ];

  /** CPU so far of every backend serving the bench's database, in µs. */
  const storeCpuUs = async () => {
    const backends = await pgAdmin<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1", "test", [database.name]);
    return backends.reduce((total, { pid }) => total + cpuMs(pid) * 1000, 0);
  };

  for (const [, write] of ways) for (let i = 0; i < 10; i++) await write(batch()); // warm-up
  const results = new Map<string, { store: number[]; pulse: number[] }>(ways.map(([name]) => [name, { store: [], pulse: [] }]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ways : [...ways].reverse();
    for (const [name, write] of order) {
      const batches = Array.from({ length: BATCHES }, batch);
      const store0 = await storeCpuUs();
      const pulse0 = process.cpuUsage();
      for (const records of batches) await write(records);
      const pulse = process.cpuUsage(pulse0);
      const storeUs = (await storeCpuUs()) - store0;
      const rows = BATCHES * BATCH_ROWS;
      results.get(name)!.store.push(storeUs / rows);
      results.get(name)!.pulse.push((pulse.user + pulse.system) / rows);
    }
  }

  console.log(`machine: ${machine()}; ${ROUNDS} interleaved rounds of ${BATCHES} batches of ${BATCH_ROWS} records (medians)`);
  console.log("| way | store CPU per record, µs | Pulse CPU per record, µs |");
  console.log("|---|---:|---:|");
  for (const [name, { store: s, pulse: p }] of results) {
    console.log(`| ${name} | ${median(s).toFixed(1)} (${s.map((v) => v.toFixed(1)).join(", ")}) | ${median(p).toFixed(1)} (${p.map((v) => v.toFixed(1)).join(", ")}) |`);
  }
} finally {
  await store.close();
  await database.drop();
}
