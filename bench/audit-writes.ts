// What writing one audit record costs, away from any HTTP load: the metadata PostgreSQL's CPU
// (every backend of the bench's database, from /proc) and Pulse's own (this process), per
// record, for batches of 500 records in the mix of bench/audit.ts. Two ways, interleaved in
// rounds: one row per record into the table migrations 0003-0012 left (a key and four
// indexes, two of them partial), by COPY as Pulse wrote it until migration 0015; and the
// groups of today (appendAuditRecords). Each in two batches: records of 7 owners on 13
// connections (groups of about 5), and of one owner on one connection (as bench/audit.ts
// sends them: a group per second). Autovacuum is off on both tables so that it does not land
// on one round and not another.
// Run: npx tsx bench/audit-writes.ts (ROUNDS, BATCHES), or npm run bench:audit with bench/audit.ts.

import { sql } from "drizzle-orm";

import { appendAuditRecords, copyText, type NewAuditRecord } from "../src/store/audit.js";
import { openStore, type Store } from "../src/store/client.js";
import { createPgDatabase, pgAdmin } from "../tests/support/services.js";
import { cpuMs, machine, median } from "./lib.js";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BATCHES = Number(process.env.BATCHES ?? 100);
const BATCH_ROWS = 500;

const STATEMENTS = [
  "SELECT track_id, name, milliseconds FROM track WHERE track_id = 42",
  "SELECT a.title, ar.name AS artist FROM album a JOIN artist ar ON ar.artist_id = a.artist_id WHERE a.album_id BETWEEN 10 AND 20 ORDER BY a.title LIMIT 1000",
  `WITH sales AS (SELECT i.billing_country, sum(il.unit_price * il.quantity) AS total FROM invoice i JOIN invoice_line il USING (invoice_id) GROUP BY 1)\n${"SELECT billing_country, total FROM sales ORDER BY total DESC LIMIT 25 -- report\n".repeat(8)}`,
  "DELETE FROM track",
];
const MIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3];

function batch(owners: number, connections: number): NewAuditRecord[] {
  return Array.from({ length: BATCH_ROWS }, (_, i) => {
    const kind = MIX[i % MIX.length]!;
    const refused = kind === 3;
    return {
      at: new Date(),
      ownerId: 1 + (i % owners),
      connectionId: 1 + (i % connections),
      source: "query",
      apiKeyId: null,
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

/** The writer before migration 0015 (commit 1c995dd's appendAuditRecords): a COPY line per record. */
async function copyRowPerRecord(store: Store, records: NewAuditRecord[]): Promise<void> {
  let rows = "";
  for (const r of records) {
    rows += `${r.at.toISOString()}\t${r.ownerId}\t${r.connectionId}\t${r.source}\t${r.apiKeyId ?? "\\N"}\t${copyText(r.sql)}\t${r.sqlLength}\t${copyText(r.sqlSha256)}\t${r.rowCount ?? "\\N"}\t${r.durationMs}\t${r.outcome}\t${copyText(r.errorCode)}\t${copyText(r.rule)}\n`;
  }
  const columns = ["at", "owner_id", "connection_id", "source", "api_key_id", "sql", "sql_length", "sql_sha256", "row_count", "duration_ms", "outcome", "error_code", "rule"];
  await store.copyRows("audit_rows", columns, rows);
}

const database = await createPgDatabase("pulse_bench_audit_writes");
const store = await openStore({ databaseUrl: database.url });
try {
  await store.migrate();
  // The table of migrations 0003-0012, as they left it.
  await store.db.execute(
    sql.raw(`
    CREATE TABLE audit_rows (id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL, owner_id integer NOT NULL, connection_id integer NOT NULL,
      source text NOT NULL, api_key_id integer, sql text NOT NULL, sql_length integer NOT NULL, sql_sha256 text, row_count integer,
      duration_ms double precision NOT NULL, outcome text NOT NULL, error_code text, rule text, PRIMARY KEY (owner_id, id));
    CREATE INDEX ON audit_rows (owner_id, at);
    CREATE INDEX ON audit_rows (connection_id, owner_id, at);
    CREATE INDEX ON audit_rows (owner_id, outcome, at) WHERE outcome <> 'ok';
    CREATE INDEX ON audit_rows (owner_id, api_key_id, at) WHERE api_key_id IS NOT NULL;
    ALTER TABLE audit_rows SET (autovacuum_enabled = false);
    ALTER TABLE audit_groups SET (autovacuum_enabled = false);`),
  );

  const ways: [string, (records: NewAuditRecord[]) => Promise<void>][] = [
    ["a row per record (migrations 0003-0012), COPY", (r) => copyRowPerRecord(store, r)],
    ["groups (migration 0015), COPY (appendAuditRecords)", (r) => appendAuditRecords(store, r)],
  ];
  const mixes: [string, () => NewAuditRecord[]][] = [
    ["7 owners x 13 connections", () => batch(7, 13)],
    ["1 owner, 1 connection", () => batch(1, 1)],
  ];

  /** CPU so far of every backend serving the bench's database, in µs. */
  const storeCpuUs = async () => {
    const backends = await pgAdmin<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1", "test", [database.name]);
    return backends.reduce((total, { pid }) => total + cpuMs(pid) * 1000, 0);
  };
  const sizes = async () =>
    new Map(
      (await pgAdmin<{ name: string; bytes: string }>("SELECT relname AS name, pg_total_relation_size(oid) AS bytes FROM pg_class WHERE relname IN ('audit_rows', 'audit_groups')", database.name)).map(
        (r) => [r.name, Number(r.bytes)],
      ),
    );

  const cases = mixes.flatMap(([mix, make]) => ways.map(([way, write]) => ({ name: `${way}; ${mix}`, write, make })));
  for (const { write, make } of cases) for (let i = 0; i < 10; i++) await write(make()); // warm-up
  const results = new Map(cases.map(({ name }) => [name, { store: [] as number[], pulse: [] as number[], bytes: [] as number[] }]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const { name, write, make } of order) {
      const batches = Array.from({ length: BATCHES }, make);
      const size0 = await sizes();
      const store0 = await storeCpuUs();
      const pulse0 = process.cpuUsage();
      for (const records of batches) await write(records);
      const pulse = process.cpuUsage(pulse0);
      const storeUs = (await storeCpuUs()) - store0;
      const size1 = await sizes();
      const table = name.startsWith("a row") ? "audit_rows" : "audit_groups";
      const rows = BATCHES * BATCH_ROWS;
      results.get(name)!.store.push(storeUs / rows);
      results.get(name)!.pulse.push((pulse.user + pulse.system) / rows);
      results.get(name)!.bytes.push((size1.get(table)! - size0.get(table)!) / rows);
    }
  }

  console.log(`machine: ${machine()}; ${ROUNDS} interleaved rounds of ${BATCHES} batches of ${BATCH_ROWS} records (medians)`);
  console.log("| way; records of | store CPU per record, µs | Pulse CPU per record, µs | bytes per record |");
  console.log("|---|---:|---:|---:|");
  for (const [name, { store: s, pulse: p, bytes }] of results) {
    console.log(`| ${name} | ${median(s).toFixed(1)} (${s.map((v) => v.toFixed(1)).join(", ")}) | ${median(p).toFixed(1)} (${p.map((v) => v.toFixed(1)).join(", ")}) | ${median(bytes).toFixed(0)} |`);
  }
} finally {
  await store.close();
  await database.drop();
}
