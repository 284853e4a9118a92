// The run's migrated template store (tests/support/store-template.ts): a run that was killed
// leaves its template and its tests' databases behind, and a later run's setup drops them; one
// a run still uses, or one just made, is kept, whichever run it belongs to.

import { randomBytes } from "node:crypto";

import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";

import { MARIADB, mariaAdmin, PG, pgAdmin, uniqueName } from "../support/services.js";
import { dropStaleDatabases, STALE_DATABASE_MS, STORE_TEMPLATE } from "../support/store-template.js";

/** This file's own prefix: dropStaleDatabases looks at its databases only, never a run's. */
const prefix = uniqueName("pulse_t_template");
const made: string[] = [];

/** A name as uniqueName makes, `ageMs` ago. */
const madeAgo = (ageMs: number) => `${prefix}_${(Date.now() - ageMs).toString(36)}_${randomBytes(4).toString("hex")}`;

/** A database named as a template made `ageMs` ago. */
async function template(ageMs: number): Promise<string> {
  const name = madeAgo(ageMs);
  await pgAdmin(`CREATE DATABASE "${name}"`);
  made.push(name);
  return name;
}

/** A MariaDB database named as a test's made `ageMs` ago. */
async function mariaDatabase(ageMs: number): Promise<string> {
  const name = madeAgo(ageMs);
  await mariaAdmin(`CREATE DATABASE \`${name}\``);
  madeOnMaria.push(name);
  return name;
}
const madeOnMaria: string[] = [];

const exists = async (name: string) => (await pgAdmin("SELECT 1 FROM pg_database WHERE datname = $1", "postgres", [name])).length === 1;
const existsOnMaria = async (name: string) => (await mariaAdmin<unknown>(`SHOW DATABASES LIKE '${name.replaceAll("_", "\\_")}'`)).length === 1;

afterAll(async () => {
  for (const name of made) await pgAdmin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  for (const name of madeOnMaria) await mariaAdmin(`DROP DATABASE IF EXISTS \`${name}\``);
});

describe("store template setup", () => {
  it("drops an old template no session uses or names, and keeps a recent one, one in use and one a run names", async () => {
    const stale = await template(2 * STALE_DATABASE_MS);
    const recent = await template(60_000);
    const inUse = await template(2 * STALE_DATABASE_MS);
    const named = await template(2 * STALE_DATABASE_MS);
    const onIt = new pg.Client({ ...PG, database: inUse });
    const mark = new pg.Client({ ...PG, database: "postgres", application_name: named });
    await onIt.connect();
    await mark.connect();
    try {
      await dropStaleDatabases(prefix);
    } finally {
      await onIt.end();
      await mark.end();
    }
    expect(await exists(stale)).toBe(false);
    expect(await exists(recent)).toBe(true);
    expect(await exists(inUse)).toBe(true);
    expect(await exists(named)).toBe(true);
  });

  it("drops the MariaDB databases a killed run's tests left, keeping a recent one and one a connection is on", async () => {
    const stale = await mariaDatabase(2 * STALE_DATABASE_MS);
    const recent = await mariaDatabase(60_000);
    const inUse = await mariaDatabase(2 * STALE_DATABASE_MS);
    const onIt = await mysql.createConnection({ ...MARIADB, database: inUse });
    try {
      await dropStaleDatabases(prefix);
    } finally {
      await onIt.end();
    }
    expect(await existsOnMaria(stale)).toBe(false);
    expect(await existsOnMaria(recent)).toBe(true);
    expect(await existsOnMaria(inUse)).toBe(true);
  });

  it("keeps an old database made after a run still marked began, however long that run has gone on: it may be that run's", async () => {
    const runStart = 3 * STALE_DATABASE_MS;
    const pgOld = await template(2 * STALE_DATABASE_MS);
    const mariaOld = await mariaDatabase(2 * STALE_DATABASE_MS);
    // A run's mark names its template, made as the run began.
    const mark = new pg.Client({ ...PG, database: "postgres", application_name: `pulse_store_template_${(Date.now() - runStart).toString(36)}_${randomBytes(4).toString("hex")}` });
    await mark.connect();
    try {
      await dropStaleDatabases(prefix);
    } finally {
      await mark.end();
    }
    expect(await exists(pgOld)).toBe(true);
    expect(await existsOnMaria(mariaOld)).toBe(true);
  });

  it("marks this run's template, for as long as the run lasts, with a session that names it", async () => {
    const name = process.env[STORE_TEMPLATE];
    expect(name).toBeDefined();
    const marks = await pgAdmin("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname <> $1", "postgres", [name]);
    expect(marks).toHaveLength(1);
  });
});
