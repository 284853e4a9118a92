// `pulse check <table_id>` (src/cli/check.ts) as an operator runs it, from the built `bin`
// (run `npm run build` first): the service's configuration, one table's checks now, the
// outcomes printed, the exit code telling.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { leaseTableForRun, releaseLease } from "../../src/store/monitoring-tables.js";
import { createHarness, type Harness } from "../support/harness.js";
import { openStore } from "../../src/store/client.js";
import { createPgDatabase, PG, pgAdmin, pgUrl } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";
import { addConnection, addWebhook, monitorTable, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PULSE = path.join(ROOT, "dist/src/cli/pulse.js");

let h: Harness;
let db: MonitoredDb;
let hooks: WebhookReceiver;
beforeAll(async () => {
  hooks = await startWebhookReceiver();
  h = await createHarness({ env: LOCAL_RECEIVER_ENV });
  db = await pgMonitoredDb();
  await db.insertEvents(4, Date.now());
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
  await hooks?.close();
});

/** npx reads the project's whole dependency tree before it runs anything: 0.7 s on a quiet
 * machine, past 30 s beside other test files (a CI run timed out there). */
const NPX_MS = 150_000;

/** Runs `pulse check ...`, through npx as an operator would when `viaNpx`. */
function pulse(args: string[], options: { viaNpx?: boolean; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    NODE_ENV: "test",
    DATABASE_URL: h.pgDatabase!.url,
    DATA_DIR: h.config.dataDir,
    SQLITE_ROOT: h.config.sqliteRoot,
    SECRETS_KEY: h.config.secretsKey.toString("hex"),
    JWT_SECRET: new TextDecoder().decode(h.config.jwtSecret),
    LOG_LEVEL: "warn",
    ...LOCAL_RECEIVER_ENV,
    ...options.env,
  };
  // --offline: npx finds the project's own bin, and must never ask the registry for a "pulse".
  const [file, argv] = options.viaNpx ? ["npx", ["--offline", "pulse", ...args]] : [process.execPath, [PULSE, ...args]];
  return new Promise((resolve) => {
    execFile(file, argv, { cwd: ROOT, env, timeout: NPX_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
const check = (...args: string[]) => pulse(["check", ...args]);

describe("pulse check <table_id>", () => {
  it("runs the table's checks, prints each outcome, exits 0 when all pass and 1 when one fails", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "volume", min_rows: 1 }, { kind: "custom_sql", name: "few", sql: "SELECT count(*) FROM events", max: 10 }],
    });
    const ok = await check(String(table.id));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^table ${table.id}: 2 checks on a primary`));
    expect(ok.stdout).toMatch(/PASS +volume value=4 +row count 4 is within the limit/);
    expect(ok.stdout).toMatch(/PASS +custom_sql:few value=4/);

    await db.insertEvents(20, Date.now());
    const failing = await check(String(table.id), "--json");
    expect(failing.code).toBe(1);
    const report = JSON.parse(failing.stdout);
    expect(report.outcomes.map((o: any) => [o.check, o.status, o.value])).toEqual([
      ["volume", "pass", 24],
      ["custom_sql:few", "fail", 24],
    ]);
    // Recorded like any other run.
    const runs = (await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body;
    expect(runs).toHaveLength(4);
  });

  it("prints the report alone in a terminal: no log lines for the failing checks it reports, unless LOG_LEVEL asks for them", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "none", sql: "SELECT count(*) FROM events", max: 0 }],
      alert: { open_after: 1 },
    });
    const quiet = await pulse(["check", String(table.id)], { env: { LOG_LEVEL: "" } });
    expect(quiet.code).toBe(1);
    expect(quiet.stdout).toMatch(/FAIL +custom_sql:none/);
    expect(quiet.stderr).toBe("");
    const asked = await pulse(["check", String(table.id)], { env: { LOG_LEVEL: "warn" } });
    expect(asked.code).toBe(1);
    expect(asked.stderr).toContain('"msg":"monitoring check failing"');
  });

  it("exits 2 for an unknown table or a missing argument", async () => {
    const unknown = await check("987654321");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no monitored table with id 987654321");
    const missing = await check();
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("usage: pulse check <table_id> [--json]");
  });

  it("exits 2 for a table deleted after it was found and before its lease was taken, as for one never there", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "volume", min_rows: 1 }] });
    // The table's row locked here: the command finds the table, then waits to lease it; the
    // row is deleted meanwhile.
    const deleter = new pg.Client({ connectionString: h.pgDatabase!.url });
    await deleter.connect();
    try {
      await deleter.query("BEGIN");
      await deleter.query("SELECT id FROM monitored_tables WHERE id = $1 FOR UPDATE", [table.id]);
      const waitingOnRow = async () =>
        Number(
          (await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE '%for update%'", undefined, [h.pgDatabase!.name]))[0]!.n,
        );
      const running = check(String(table.id), "--json");
      await vi.waitFor(async () => expect(await waitingOnRow()).toBe(1), { timeout: 20_000, interval: 50 });
      await deleter.query("DELETE FROM monitored_tables WHERE id = $1", [table.id]);
      await deleter.query("COMMIT");
      const run = await running;
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(JSON.parse(run.stdout)).toEqual({ error: "not_found", detail: `no monitored table with id ${table.id}` });
    } finally {
      await deleter.end();
    }
  });

  it("refuses what it does not take with exit 2 and the reason, never running on a guess", async () => {
    for (const [args, reason] of [
      [["1", "--jsn"], /--jsn/],
      [["0x1"], /table_id must be a whole number from 1 to 2147483647/],
      [["1e0"], /table_id must be a whole number/],
      [["2147483648"], /table_id must be a whole number from 1 to 2147483647/],
      [["1", "2"], /usage: pulse check <table_id> \[--json\]/],
    ] as const) {
      const run = await check(...args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(reason);
      expect(run.stderr, args.join(" ")).not.toMatch(/\n\s+at /);
      expect(run.stdout, args.join(" ")).toBe("");
    }
  });

  it("refuses a DATA_DIR with no store in it with exit 5 (not a failing check's 1), making none there (not the server's: it would find no table)", async () => {
    const elsewhere = path.join(tmpdir(), `pulse-no-store-${process.pid}-${Date.now()}`);
    const run = await pulse(["check", "1", "--json"], { env: { DATA_DIR: elsewhere, DATABASE_URL: "", JWT_SECRET: "", SECRETS_KEY: "" } });
    expect(run.code).toBe(5);
    expect(JSON.parse(run.stdout)).toMatchObject({ error: "failed", detail: expect.stringContaining(`no Pulse store at ${elsewhere}`) });
    expect(existsSync(elsewhere)).toBe(false);
  });

  it("never migrates: a database with no store, or with migrations pending, is refused with exit 5 and left as it was", async () => {
    const empty = await createPgDatabase("pulse_t_check_empty");
    const behind = await createPgDatabase("pulse_t_check_behind");
    try {
      const tables = async (db: typeof empty) =>
        (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"))[0]!.n;
      const none = await pulse(["check", "1", "--json"], { env: { DATABASE_URL: empty.url } });
      expect(none.code).toBe(5);
      expect(JSON.parse(none.stdout)).toMatchObject({ error: "failed", detail: expect.stringContaining("no Pulse store there") });
      expect(await tables(empty)).toBe(0);

      // A store one migration behind this build, as the servers' is while an upgrade waits.
      const store = await openStore({ databaseUrl: behind.url });
      await store.migrate();
      await store.close();
      await behind.query("DELETE FROM drizzle.__drizzle_migrations WHERE created_at = (SELECT max(created_at) FROM drizzle.__drizzle_migrations)");
      const journal = async () => (await behind.query<{ n: number }>("SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations"))[0]!.n;
      const applied = await journal();
      const pending = await pulse(["check", "1"], { env: { DATABASE_URL: behind.url } });
      expect(pending.code).toBe(5);
      expect(pending.stderr).toMatch(/has 1 migration pending for this Pulse/);
      expect(pending.stderr).not.toMatch(/\n\s+at /);
      expect(await journal()).toBe(applied);
    } finally {
      await empty.drop();
      await behind.drop();
    }
  });

  it("with --json, says what went wrong as JSON on stdout too", async () => {
    const unknown = await check("987654321", "--json");
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toEqual({ error: "not_found", detail: "no monitored table with id 987654321" });
    const bad = await check("x", "--json");
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: "bad_argument" });
  });

  it("exits 3 while another instance runs checks of the table's connection, and runs once it has finished", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const body = { connection_id: connectionId, table: "events", checks: [{ kind: "volume", min_rows: 1 }] };
    const table = await monitorTable(h, user.token, body);
    const other = await monitorTable(h, user.token, body);
    // Another instance holds a lease on the connection's other table, as while it runs it.
    const lease = { id: other.id, owner: "another-instance" };
    expect(await leaseTableForRun(h.deps.store.db, { ...lease, now: new Date(), leaseUntil: new Date(Date.now() + 300_000) })).toHaveProperty("leased");
    const refused = await check(String(table.id));
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("Checks of this table's connection are running on another instance; retry shortly");
    expect(refused.stdout).toBe("");

    await releaseLease(h.deps.store.db, lease);
    expect((await check(String(table.id))).code).toBe(0);
  });

  it("says in one line, with the store's reason, when the store is lost while a check runs (exit 5), and as JSON with --json", async () => {
    const user = await h.newUser();
    // The process reaches its store through a relay, and the check waits on this lock in the
    // monitored database: the store goes away while the check runs, not before it started.
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    const locker = new pg.Client({ connectionString: pgUrl(db.body.database_name as string) });
    await locker.connect();
    const waitingOnLock = async () =>
      Number((await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", undefined, [db.body.database_name]))[0]!.n);
    try {
      for (const args of [[], ["--json"]]) {
        // A connection each: the lease of the last run's stays until it runs out (it could not be released).
        const connectionId = await addConnection(h, user.token, db.body);
        const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 1000 }] });
        relay.refuse(false);
        await locker.query("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
        const running = pulse(["check", String(table.id), ...args], { env: { DATABASE_URL: `postgresql://${PG.user}@127.0.0.1:${relay.port}/${h.pgDatabase!.name}` } });
        await vi.waitFor(async () => expect(await waitingOnLock()).toBe(1), { timeout: 20_000, interval: 50 });
        relay.refuse(true);
        relay.cut();
        await locker.query("COMMIT");
        const run = await running;
        expect(run.code, run.stderr).toBe(5);
        // The store's reason and what to do, not Drizzle's statement and a stack (beside the
        // log's records of what failed). Which reason depends on where the cut met the session:
        // mid-statement (terminated), or at its next connect (reset, refused).
        const said = run.stderr.trim().split("\n").filter((line) => !line.startsWith('{"level":'));
        expect(said, run.stderr).toEqual([
          expect.stringMatching(/^pulse check: the store failed mid-way \((connection (reset|refused)|Connection terminated unexpectedly)\); .*run it again once the store answers$/),
        ]);
        expect(run.stdout).toBe(args.length > 0 ? `${JSON.stringify({ error: "store_unavailable", detail: said[0] })}\n` : "");
      }
    } finally {
      await locker.end();
      await relay.close();
    }
  });

  it("shows what the monitored database names escaped, never as a terminal's control sequences", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    await db.exec("CREATE TABLE drift (id int)");
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "drift", checks: [{ kind: "schema_drift" }] });
    // Whoever can add a column chooses its name: a hidden link (OSC 8), a cleared screen in its
    // 7-bit (ESC [) and 8-bit (U+009B) forms, a line of its own faking a passing check, and
    // text turned around.
    const column = "x\u001b]8;;http://evil.example\u0007\u001b[2J\u009b2J\n  PASS    fake\u202e";
    await db.exec(`ALTER TABLE drift ADD COLUMN "${column}" int`);

    const run = await check(String(table.id));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`^table ${table.id}: 1 check on a primary`));
    expect(run.stdout).toContain("added x\\u{1b}]8;;http://evil.example\\u{7}\\u{1b}[2J\\u{9b}2J\\u{a}  PASS    fake\\u{202e} (integer)");
    expect(run.stdout.trimEnd().split("\n")).toHaveLength(2);
    // eslint-disable-next-line no-control-regex -- control characters are what it looks for
    expect(run.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);

    // As JSON, the name is whole once parsed, and its characters are escaped in the text.
    const json = await check(String(table.id), "--json");
    expect(JSON.parse(json.stdout).outcomes[0].details.added[0].name).toBe(column);
    // eslint-disable-next-line no-control-regex -- control characters are what it looks for
    expect(json.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
  });
});

describe("npx pulse", () => {
  it("lists its commands with --help and exits 0", { timeout: NPX_MS + 10_000 }, async () => {
    const help = await pulse(["--help"], { viaNpx: true });
    expect(help.code).toBe(0);
    for (const command of ["serve", "migrate", "check <table_id> [--json]"]) expect(help.stdout).toContain(command);
    // Every exit code check has (check.ts), 5 included.
    expect(help.stdout).toMatch(/5 when it could not run at\s+all/);
  });

  it("sends the notifications of the alerts its run opened before it exits", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const path = `/cli-${user.id}`;
    await addWebhook(h, user.token, `${hooks.url}${path}`);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "none", sql: "SELECT count(*) FROM events", max: 0 }],
      alert: { open_after: 1 },
    });
    // A receiver slow to answer: the process must wait for it to record the send.
    hooks.delayNext(1, 1000);
    expect((await check(String(table.id))).code).toBe(1);
    // Delivered by the process itself (it has exited, and nothing else here sends), and
    // recorded as sent, not left to be sent again once its claim runs out.
    expect(hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened"]);
    const rows = await pgAdmin<{ status: string }>(
      "SELECT n.status FROM sent_notifications n JOIN alerts a ON a.id = n.alert_id WHERE a.table_id = $1",
      h.pgDatabase!.name,
      [table.id],
    );
    expect(rows).toEqual([{ status: "sent" }]);
  });

  it("serve and migrate refuse arguments (a misplaced setting) instead of running on the defaults", async () => {
    for (const command of ["serve", "migrate"]) {
      const run = await pulse([command, "--port", "9"]);
      expect(run.code, command).toBe(2);
      expect(run.stderr, command).toContain("takes no arguments");
      expect(run.stderr, command).toContain(`PORT=9000 npx pulse ${command}`);
    }
  });

  it("refuses an unknown command with exit 2 and the help on stderr", async () => {
    const unknown = await pulse(["chek", "1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "chek"');
    expect(unknown.stdout).toBe("");
  });

  it("check --json prints the report and nothing else on stdout", { timeout: NPX_MS + 10_000 }, async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "volume", min_rows: 1 }] });
    const { code, stdout } = await pulse(["check", String(table.id), "--json"], { viaNpx: true });
    expect(code).toBe(0);
    expect(stdout.trimStart().startsWith("{")).toBe(true);
    expect(JSON.parse(stdout)).toMatchObject({ table_id: table.id, outcomes: [{ check: "volume", status: "pass" }] });
  });
});
