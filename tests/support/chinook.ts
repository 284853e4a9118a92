// Chinook (shared/data/chinook) loaded into fresh PostgreSQL and MariaDB databases, and copied
// for SQLite: the same data in three dialects for cross-dialect read tests and benchmarks.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import pg from "pg";

import { createMariaDatabase, createPgDatabase, MARIADB, PG } from "./services.js";

const script = (name: string) => readFileSync(fileURLToPath(new URL(`../../../shared/data/chinook/${name}`, import.meta.url)), "utf8");

/** The scripts create and switch to their own database; we load into ours instead. */
const withoutDatabaseSwitch = (sql: string) =>
  sql.replace(/^(DROP DATABASE|CREATE DATABASE|\\c |USE ).*$/gm, "");

export async function loadChinookPostgres() {
  const db = await createPgDatabase("pulse_chinook");
  const client = new pg.Client({ ...PG, database: db.name });
  await client.connect();
  try {
    await client.query(withoutDatabaseSwitch(script("Chinook_PostgreSql.sql")));
    await client.query("ANALYZE");
  } finally {
    await client.end();
  }
  return db;
}

export async function loadChinookMaria() {
  const db = await createMariaDatabase("pulse_chinook");
  const conn = await mysql.createConnection({ ...MARIADB, database: db.name, multipleStatements: true });
  try {
    await conn.query(withoutDatabaseSwitch(script("Chinook_MySql.sql")));
  } finally {
    await conn.end();
  }
  return db;
}
