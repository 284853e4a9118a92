// A SQLite file is checked to be inside SQLITE_ROOT when its connection is saved and opened. A
// file or directory on its path swapped afterwards for a link out of the root (or for a FIFO)
// must not be read: every open of the file holds it to the checked path.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setImmediate as turn } from "node:timers/promises";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createSqliteDriver } from "../../src/connectors/drivers/sqlite.js";
import { createHarness, type Harness } from "../support/harness.js";
import { uniqueName } from "../support/services.js";

let h: Harness;
let outside: string;

beforeAll(async () => {
  h = await createHarness();
  outside = mkdtempSync(path.join(tmpdir(), "pulse-outside-"));
});
afterAll(async () => {
  await h?.close();
  rmSync(outside, { recursive: true, force: true });
});

function makeDb(file: string, table: string) {
  const db = new Database(file);
  db.exec(`CREATE TABLE ${table} (v text); INSERT INTO ${table} VALUES ('${table} row')`);
  db.close();
}

/** A user with a connection to `<dir>/a.sqlite` in the root, and a secret file of that name outside. */
async function setUp() {
  const dir = uniqueName("swap");
  mkdirSync(path.join(h.sqliteRoot, dir));
  makeDb(path.join(h.sqliteRoot, dir, "a.sqlite"), "inside");
  mkdirSync(path.join(outside, dir));
  makeDb(path.join(outside, dir, "a.sqlite"), "secret");
  const user = await h.newUser();
  const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: { db_type: "sqlite", database_name: `${dir}/a.sqlite` } });
  expect(added.status, added.text).toBe(201);
  const id = added.body.db_connection.id as number;
  const read = (sql: string) => h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql } });
  expect((await read("SELECT v FROM inside")).body.data.rows).toEqual([["inside row"]]);
  return { dir, read, inRoot: path.join(h.sqliteRoot, dir), outsideDir: path.join(outside, dir) };
}

const movedAway = expect.stringMatching(/^SQLite file "swap_[^"]+\/a.sqlite" is no longer a file inside SQLITE_ROOT/);

describe("a SQLite file swapped after its connection was opened", () => {
  it("is not read through a directory on its path replaced by a link out of the root", async () => {
    const { read, inRoot, outsideDir } = await setUp();
    renameSync(inRoot, `${inRoot}.orig`);
    symlinkSync(outsideDir, inRoot);
    const res = await read("SELECT v FROM secret");
    expect(res.status, res.text).toBe(400);
    expect(res.body.detail).toEqual(movedAway);
    expect(res.text).not.toContain("secret row");
    expect(res.text).not.toContain(outside);
  });

  it("is not read through the file itself replaced by a link out of the root", async () => {
    const { read, inRoot, outsideDir } = await setUp();
    renameSync(path.join(inRoot, "a.sqlite"), path.join(inRoot, "a.orig"));
    symlinkSync(path.join(outsideDir, "a.sqlite"), path.join(inRoot, "a.sqlite"));
    const res = await read("SELECT v FROM secret");
    expect(res.status, res.text).toBe(400);
    expect(res.body.detail).toEqual(movedAway);
    // Put back, it is read again.
    rmSync(path.join(inRoot, "a.sqlite"));
    renameSync(path.join(inRoot, "a.orig"), path.join(inRoot, "a.sqlite"));
    expect((await read("SELECT v FROM inside")).body.data.rows).toEqual([["inside row"]]);
  });

  it("answers at once for a FIFO put in its place, rather than waiting on it", async () => {
    const { read, inRoot } = await setUp();
    rmSync(path.join(inRoot, "a.sqlite"));
    execFileSync("mkfifo", [path.join(inRoot, "a.sqlite")]);
    const startedAt = Date.now();
    const res = await read("SELECT 1");
    expect(res.status, res.text).toBe(400);
    expect(res.body.detail).toEqual(movedAway);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });
});

describe("a directory swapped back and forth under a SQLite file being read", () => {
  it("never has its link's file read, whatever the timing of the swaps", async () => {
    const root = realpathSync(mkdtempSync(path.join(tmpdir(), "pulse-swap-root-")));
    const elsewhere = realpathSync(mkdtempSync(path.join(tmpdir(), "pulse-swap-out-")));
    try {
      mkdirSync(path.join(root, "swap"));
      makeDb(path.join(root, "swap", "a.sqlite"), "t");
      mkdirSync(path.join(elsewhere, "swap"));
      const secret = new Database(path.join(elsewhere, "swap", "a.sqlite"));
      secret.exec("CREATE TABLE t (v text); INSERT INTO t VALUES ('secret row')");
      secret.close();
      const [dir, aside, link] = [path.join(root, "swap"), path.join(root, "swap.orig"), path.join(root, "swap.link")];
      symlinkSync(path.join(elsewhere, "swap"), link);
      const filePath = path.join(dir, "a.sqlite");
      const driver = await createSqliteDriver({ dialect: "sqlite", host: "", port: 0, database: "swap/a.sqlite", username: "", password: "", ssl: false, filePath, connectTimeoutMs: 10_000 });
      let swapping = true;
      const swapper = (async () => {
        while (swapping) {
          renameSync(dir, aside);
          renameSync(link, dir);
          await turn();
          renameSync(dir, link);
          renameSync(aside, dir);
          await turn();
        }
      })();
      const seen = new Map<string, number>();
      const until = Date.now() + 2_000;
      try {
        while (Date.now() < until) {
          const answer = await driver.query("SELECT v FROM t", { maxRows: 10, maxBytes: 10_000, timeoutMs: 2_000 }).then(
            (r) => String(r.rows[0]?.[0]),
            (e: unknown) => (e as Error).message.replace(/^SQLite file "[^"]*" /, ""),
          );
          seen.set(answer, (seen.get(answer) ?? 0) + 1);
        }
      } finally {
        swapping = false;
        await swapper;
        await driver.close();
      }
      expect([...seen.keys()]).not.toContain("secret row");
      expect(seen.get("t row")).toBeGreaterThan(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
