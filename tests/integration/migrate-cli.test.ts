// `pulse migrate` (src/cli/migrate.ts) as an operator runs it, from the built `bin` (run
// `npm run build` first): what it applied, what it refuses, and what it needs and leaves behind.

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { readMigrationFiles } from "drizzle-orm/migrator";
import { afterAll, describe, expect, it } from "vitest";

import { projectPath } from "../../src/paths.js";
import { createPgDatabase } from "../support/services.js";

const PULSE = projectPath("dist/src/cli/pulse.js");
const KNOWN = readdirSync(projectPath("migrations")).filter((name) => name.endsWith(".sql")).length;

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-migrate-"));
  dirs.push(dir);
  return dir;
};
const dbs: Awaited<ReturnType<typeof createPgDatabase>>[] = [];
const freshDb = async () => {
  const db = await createPgDatabase("pulse_migrate");
  dbs.push(db);
  return db;
};
afterAll(async () => {
  for (const db of dbs) await db.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** `pulse migrate` with only `env` (and PATH), run in `cwd` (a directory of its own by default). */
function migrate(env: Record<string, string>, cwd = tempDir()): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PULSE, "migrate"], { cwd, env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

/** One line naming the setting, without Drizzle's statement or a stack. */
function expectOneLine(stderr: string, setting: string, reason: RegExp) {
  expect(stderr.split("\n"), stderr).toHaveLength(1);
  expect(stderr.startsWith(`${setting}: `), stderr).toBe(true);
  expect(stderr).toMatch(reason);
  expect(stderr).not.toMatch(/Failed query|CREATE TABLE|\n\s+at /);
}

describe("pulse migrate", () => {
  it("says how many migrations it applied, and that there was nothing to apply", async () => {
    const fresh = await freshDb();
    const first = await migrate({ DATABASE_URL: fresh.url });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`${KNOWN} migrations applied to the postgresql store (${KNOWN} in all)`);
    const again = await migrate({ DATABASE_URL: fresh.url });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(`the postgresql store is up to date (${KNOWN} migrations), nothing to apply`);
  });

  it("says it applied them only in the run that did, when runs race", async () => {
    const fresh = await freshDb();
    const runs = await Promise.all([1, 2, 3].map(() => migrate({ DATABASE_URL: fresh.url })));
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
    const said = runs.map((r) => r.stdout).sort();
    expect(said).toEqual([
      `${KNOWN} migrations applied to the postgresql store (${KNOWN} in all)`,
      `the postgresql store is up to date (${KNOWN} migrations), nothing to apply`,
      `the postgresql store is up to date (${KNOWN} migrations), nothing to apply`,
    ]);
  });

  it("refuses a store a newer Pulse migrated, exit 1", async () => {
    const db = await freshDb();
    expect((await migrate({ DATABASE_URL: db.url })).code).toBe(0);
    await db.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('future', 9999999999999)");
    const { code, stdout, stderr } = await migrate({ DATABASE_URL: db.url });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expectOneLine(stderr, "DATABASE_URL", new RegExp(`schema is newer than this Pulse \\(${KNOWN + 1} migrations applied, this build knows ${KNOWN}\\); run the newer Pulse or restore a backup`));
  });

  it("refuses a database that is not Pulse's and leaves it as it was", async () => {
    const db = await freshDb();
    await db.query("CREATE TABLE users (id int)");
    const { code, stderr } = await migrate({ DATABASE_URL: db.url });
    expect(code).toBe(1);
    expectOneLine(stderr, "DATABASE_URL", /the database is not Pulse's \(its public schema has tables, users, but no Pulse migrations\)/);
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'drizzle'")).toEqual([]);
  });

  it("migrates a new database whose public schema holds only an extension's tables (PostGIS's spatial_ref_sys)", async () => {
    const db = await freshDb();
    // As PostGIS's images leave every new database: a table that is the extension's own.
    await db.query("CREATE EXTENSION citext");
    await db.query("CREATE TABLE spatial_ref_sys (srid int PRIMARY KEY)");
    await db.query("ALTER EXTENSION citext ADD TABLE spatial_ref_sys");
    const { code, stderr } = await migrate({ DATABASE_URL: db.url });
    expect(code, stderr).toBe(0);
  });

  it("names the migration that failed and the store's reason in one line", async () => {
    const db = await freshDb();
    expect((await migrate({ DATABASE_URL: db.url })).code).toBe(0);
    // The store forgets it had the last migration: applying it again fails on what it made.
    await db.query("DELETE FROM drizzle.__drizzle_migrations WHERE created_at = (SELECT max(created_at) FROM drizzle.__drizzle_migrations)");
    const { code, stderr } = await migrate({ DATABASE_URL: db.url });
    expect(code).toBe(1);
    const newest = (JSON.parse(readFileSync(projectPath("migrations/meta/_journal.json"), "utf8")) as { entries: { tag: string }[] }).entries.at(-1)!.tag;
    expectOneLine(stderr, "DATABASE_URL", new RegExp(`^DATABASE_URL: migration ${newest} failed \\(relation "\\w+" already exists\\); no pending migration was applied`));
  });
});

describe("upgrading a store an earlier Pulse migrated", () => {
  it("upgrades a store that has 0007's first version, which main shipped for a few commits before it was edited", async () => {
    // What main between 01bacf8 and a99455b left: 0000-0007 applied, 0007 journaled at its first
    // time, and its connection index without the owner (0009 rebuilds that index anyway).
    const db = await freshDb();
    await db.query('CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)');
    const first = readMigrationFiles({ migrationsFolder: projectPath("migrations") }).slice(0, 8);
    for (const m of first) {
      for (const statement of m.sql) await db.query(statement);
      await db.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, $2)", [m.hash, m.folderMillis]);
    }
    await db.query('DROP INDEX audit_records_connection_idx; CREATE INDEX audit_records_connection_idx ON audit_records USING btree (connection_id, id)');
    await db.query("UPDATE drizzle.__drizzle_migrations SET created_at = 1796351205548 WHERE created_at = $1", [first[7]!.folderMillis]);
    await db.query("INSERT INTO users (name, email, password_hash) VALUES ('Old', 'old@example.com', 'x')");

    const { code, stdout, stderr } = await migrate({ DATABASE_URL: db.url });
    expect(code, stderr).toBe(0);
    expect(stdout).toBe(`${KNOWN - 8} migrations applied to the postgresql store (${KNOWN} in all)`);
    // 0009 rebuilt that index; 0015 moved the records into groups, with their own.
    const [index] = await db.query<{ def: string }>("SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'audit_groups_connection_idx'");
    expect(index!.def).toContain("(connection_id, owner_id, last_at)");
    expect(await db.query("SELECT email FROM users")).toEqual([{ email: "old@example.com" }]);
    expect((await migrate({ DATABASE_URL: db.url })).stdout).toBe(`the postgresql store is up to date (${KNOWN} migrations), nothing to apply`);
  });
});

describe("what pulse migrate needs", () => {
  it("needs only DATABASE_URL, in production too, and writes nothing where it runs", async () => {
    const db = await freshDb();
    const cwd = tempDir();
    const { code, stderr } = await migrate({ NODE_ENV: "production", DATABASE_URL: db.url }, cwd);
    expect(code, stderr).toBe(0);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("still names DATABASE_URL missing in production", async () => {
    const { code, stderr } = await migrate({ NODE_ENV: "production" });
    expect(code).toBe(1);
    expect(stderr).toContain("DATABASE_URL: required when NODE_ENV=production");
  });

  it("migrates the embedded store in DATA_DIR without generating secrets there", async () => {
    const dataDir = path.join(tempDir(), "data");
    const first = await migrate({ DATA_DIR: dataDir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`${KNOWN} migrations applied to the pglite store (${KNOWN} in all)`);
    expect(existsSync(path.join(dataDir, "pglite", "PG_VERSION"))).toBe(true);
    expect(existsSync(path.join(dataDir, "secrets.json"))).toBe(false);
  }, 120_000);
});
