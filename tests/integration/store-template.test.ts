// The run's migrated template store (tests/support/store-template.ts): a run that was killed
// leaves its template behind, and a later run's setup drops it; a template a run still uses,
// or one just made, is kept, whichever run it belongs to.

import { randomBytes } from "node:crypto";

import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";

import { PG, pgAdmin, uniqueName } from "../support/services.js";
import { dropStaleTemplates, STALE_TEMPLATE_MS, STORE_TEMPLATE } from "../support/store-template.js";

/** This file's own prefix: dropStaleTemplates looks at its databases only, never a run's. */
const prefix = uniqueName("pulse_t_template");
const made: string[] = [];

/** A database named as a template made `ageMs` ago. */
async function template(ageMs: number): Promise<string> {
  const name = `${prefix}_${(Date.now() - ageMs).toString(36)}_${randomBytes(4).toString("hex")}`;
  await pgAdmin(`CREATE DATABASE "${name}"`);
  made.push(name);
  return name;
}

const exists = async (name: string) => (await pgAdmin("SELECT 1 FROM pg_database WHERE datname = $1", "postgres", [name])).length === 1;

afterAll(async () => {
  for (const name of made) await pgAdmin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
});

describe("store template setup", () => {
  it("drops an old template no session uses or names, and keeps a recent one, one in use and one a run names", async () => {
    const stale = await template(2 * STALE_TEMPLATE_MS);
    const recent = await template(60_000);
    const inUse = await template(2 * STALE_TEMPLATE_MS);
    const named = await template(2 * STALE_TEMPLATE_MS);
    const onIt = new pg.Client({ ...PG, database: inUse });
    const mark = new pg.Client({ ...PG, database: "postgres", application_name: named });
    await onIt.connect();
    await mark.connect();
    try {
      await dropStaleTemplates(prefix);
    } finally {
      await onIt.end();
      await mark.end();
    }
    expect(await exists(stale)).toBe(false);
    expect(await exists(recent)).toBe(true);
    expect(await exists(inUse)).toBe(true);
    expect(await exists(named)).toBe(true);
  });

  it("marks this run's template, for as long as the run lasts, with a session that names it", async () => {
    const name = process.env[STORE_TEMPLATE];
    expect(name).toBeDefined();
    const marks = await pgAdmin("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname <> $1", "postgres", [name]);
    expect(marks).toHaveLength(1);
  });
});
