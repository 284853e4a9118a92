// Schema introspection on a large PostgreSQL schema: Pulse's one catalog query against
// LangChain's SqlDatabase (typeorm DataSource + getTableInfo), on 1,000 tables x 20 columns
// with foreign keys and comments, in a database made for the run and dropped after it.
// Run: npx tsx bench/introspect.ts   (PG_HOST, PG_PORT, PG_USER, PG_PASSWORD, RUNS, TABLES)

import { randomBytes } from "node:crypto";

import { SqlDatabase } from "@langchain/classic/sql_db";
import pg from "pg";
import { DataSource } from "typeorm";

import { createPostgresDriver } from "../src/connectors/drivers/postgres.js";
import type { ConnectionTarget } from "../src/connectors/types.js";
import { machine, median } from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 5);
const TABLES = Number(process.env.TABLES ?? 1000);
const COLUMNS = 20;
const server = {
  host: process.env.PG_HOST ?? "127.0.0.1",
  port: Number(process.env.PG_PORT ?? 5432),
  user: process.env.PG_USER ?? "postgres",
  password: process.env.PG_PASSWORD ?? "",
};
const database = `pulse_bench_introspect_${randomBytes(4).toString("hex")}`;

/** Table i: id, 1-2 references to earlier tables, the rest plain columns of varied types. */
function schemaSql(): string {
  const types = ["text", "integer", "bigint", "numeric(12,2)", "timestamptz", "boolean", "varchar(64)", "date", "jsonb"];
  const statements: string[] = [];
  for (let i = 1; i <= TABLES; i++) {
    const columns = ["id bigserial PRIMARY KEY"];
    const refs = i === 1 ? [] : i % 3 === 0 && i > 2 ? [i - 1, Math.ceil(i / 2)] : [Math.max(1, i - 1 - (i % 7))];
    for (const ref of new Set(refs)) columns.push(`t${ref}_id bigint REFERENCES t${ref} (id)`);
    for (let c = columns.length; c < COLUMNS; c++) columns.push(`c${c} ${types[(i + c) % types.length]}${c % 4 === 0 ? " NOT NULL" : ""}`);
    statements.push(`CREATE TABLE t${i} (${columns.join(", ")});`);
    if (i % 5 === 0) statements.push(`COMMENT ON TABLE t${i} IS 'Table number ${i}, described for the model';`);
    if (i % 10 === 0) statements.push(`COMMENT ON COLUMN t${i}.c5 IS 'A column with a comment';`);
  }
  return statements.join("\n");
}

async function withAdmin<T>(db: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...server, database: db });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

const target: ConnectionTarget = {
  dialect: "postgresql",
  host: server.host,
  port: server.port,
  database,
  username: server.user,
  password: server.password,
  ssl: false,
  connectTimeoutMs: 5_000,
};

async function timePulse(): Promise<{ ms: number; tables: number; jsonChars: number }> {
  const driver = await createPostgresDriver(target, { maxConnections: 1, idleTimeoutMs: 60_000 });
  try {
    const startedAt = performance.now();
    const snapshot = await driver.introspect();
    const ms = performance.now() - startedAt;
    return { ms, tables: snapshot.tables.length, jsonChars: JSON.stringify(snapshot).length };
  } finally {
    await driver.close();
  }
}

/** Repeated introspection on one connection (the server's catalog caches warm). */
async function timePulseWarm(): Promise<number> {
  const driver = await createPostgresDriver(target, { maxConnections: 1, idleTimeoutMs: 60_000 });
  try {
    await driver.introspect();
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const startedAt = performance.now();
      await driver.introspect();
      times.push(performance.now() - startedAt);
    }
    return median(times);
  } finally {
    await driver.close();
  }
}

async function timeLangChain(sampleRowsInTableInfo: number): Promise<{ ms: number; chars: number }> {
  const startedAt = performance.now();
  const appDataSource = new DataSource({
    type: "postgres",
    host: server.host,
    port: server.port,
    username: server.user,
    password: server.password,
    database,
  });
  await appDataSource.initialize();
  try {
    const db = await SqlDatabase.fromDataSourceParams({ appDataSource, sampleRowsInTableInfo });
    const info = await db.getTableInfo();
    return { ms: performance.now() - startedAt, chars: info.length };
  } finally {
    await appDataSource.destroy();
  }
}

async function series<T extends { ms: number }>(run: () => Promise<T>): Promise<{ cold: T; median: number; last: T }> {
  const cold = await run();
  const times: number[] = [];
  let last = cold;
  for (let i = 0; i < RUNS; i++) {
    last = await run();
    times.push(last.ms);
  }
  return { cold, median: median(times), last };
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

await withAdmin("postgres", (c) => c.query(`CREATE DATABASE ${database}`));
try {
  const built = performance.now();
  const version = await withAdmin(database, async (c) => {
    await c.query(schemaSql());
    return (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  });
  console.log(`machine: ${machine()}, PostgreSQL ${version}`);
  console.log(`schema: ${TABLES} tables x ${COLUMNS} columns, 1-2 foreign keys each, comments on some (built in ${fmt(performance.now() - built)})`);
  console.log(`runs: cold first run, then median of ${RUNS} (each on a new connection; connection set-up not timed for Pulse)`);

  const pulse = await series(timePulse);
  const pulseWarm = await timePulseWarm();
  const langchain = await series(() => timeLangChain(3));
  const langchainBare = await series(() => timeLangChain(0));

  console.log("| | cold | median | rendered size |");
  console.log("|---|---:|---:|---:|");
  console.log(
    `| Pulse createPostgresDriver().introspect() (all schemas, PK/FK, comments, row estimates) | ${fmt(pulse.cold.ms)} | ${fmt(pulse.median)} | ${pulse.last.jsonChars} chars of JSON, ${pulse.last.tables} tables |`,
  );
  console.log(`| same, repeated on one connection (warm catalog caches) | | ${fmt(pulseWarm)} | |`);
  console.log(
    `| LangChain SqlDatabase init + getTableInfo(), 3 sample rows (default) | ${fmt(langchain.cold.ms)} | ${fmt(langchain.median)} | ${langchain.last.chars} chars |`,
  );
  console.log(
    `| LangChain SqlDatabase init + getTableInfo(), no sample rows | ${fmt(langchainBare.cold.ms)} | ${fmt(langchainBare.median)} | ${langchainBare.last.chars} chars |`,
  );
  console.log(`ratio (LangChain default / Pulse, medians): ${(langchain.median / pulse.median).toFixed(1)}x`);
  console.log(`ratio (LangChain no samples / Pulse, medians): ${(langchainBare.median / pulse.median).toFixed(1)}x`);
} finally {
  await withAdmin("postgres", (c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
}
