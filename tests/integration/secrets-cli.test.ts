// `pulse secrets rotate` (src/cli/secrets.ts) as an operator runs it, from the built `bin` (run
// `npm run build` first), beside running instances of the same deployment: every sealed value
// moved under SECRETS_KEY, what no key opens listed and left alone, a value the service
// changed meanwhile never overwritten, and nothing to do the second time.

import { execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { openSealed, sealSecret } from "../../src/auth/secrets.js";
import { sealContext } from "../../src/connectors/targets.js";
import { channelSealContext } from "../../src/monitoring/notifiers.js";
import { projectPath } from "../../src/paths.js";
import { rotateSealedValues } from "../../src/services/secret-rotation.js";
import { openStore } from "../../src/store/client.js";
import { insertConnection } from "../../src/store/connections.js";
import { insertChannel } from "../../src/store/monitoring-channels.js";
import { sealedRows } from "../../src/store/sealed-values.js";
import { insertUser } from "../../src/store/users.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addWebhook } from "../support/monitoring.js";
import { createPgDatabase, pgAdmin, pgUrl } from "../support/services.js";
import { mariaTarget, sqliteTarget, type TargetDb } from "../support/targets.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const PULSE = projectPath("dist/src/cli/pulse.js");
const KEY_A = randomBytes(32).toString("hex");
const KEY_B = randomBytes(32).toString("hex");
const KEY_C = randomBytes(32).toString("hex");
const JWT = randomBytes(32).toString("base64url");

let target: TargetDb;
let hooks: WebhookReceiver;
beforeAll(async () => {
  hooks = await startWebhookReceiver();
  target = await mariaTarget();
});
afterAll(async () => {
  await target?.drop();
  await hooks?.close();
});

/** Each test's deployment: its first instance (SECRETS_KEY A) and those added to it. */
let instances: Harness[] = [];
afterEach(async () => {
  for (const h of instances.reverse()) await h.close();
  instances = [];
});
const deployment = async () => {
  const h = await createHarness({ env: { ...LOCAL_RECEIVER_ENV, SECRETS_KEY: KEY_A, JWT_SECRET: JWT } });
  instances.push(h);
  return h;
};
/** Another instance of `first`'s deployment, with its secrets key(s). */
const instance = async (first: Harness, env: Record<string, string>) => {
  const h = await createHarness({ shareWith: first, env: { ...LOCAL_RECEIVER_ENV, JWT_SECRET: JWT, ...env } });
  instances.unshift(h);
  return h;
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `pulse secrets rotate ...` with the deployment's settings and `env`'s; `child`, to signal it. */
function pulse(args: string[], env: Record<string, string>): Promise<Run> & { child: ChildProcess } {
  let child!: ChildProcess;
  const done = new Promise<Run>((resolve) => {
    child = execFile(process.execPath, [PULSE, ...args], { cwd: projectPath(), env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", JWT_SECRET: JWT, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
  return Object.assign(done, { child });
}
const rotate = (h: Harness, env: Record<string, string>, ...args: string[]) => pulse(["secrets", "rotate", ...args], { DATABASE_URL: h.pgDatabase!.url, DATA_DIR: h.config.dataDir, ...env });

const sealedPassword = async (h: Harness, id: number) =>
  (await pgAdmin<{ password_sealed: string }>("SELECT password_sealed FROM db_connections WHERE id = $1", h.pgDatabase!.name, [id]))[0]!.password_sealed;
const sealedUrl = async (h: Harness, id: number) =>
  (await pgAdmin<{ url_sealed: string }>("SELECT url_sealed FROM notification_channels WHERE id = $1", h.pgDatabase!.name, [id]))[0]!.url_sealed;

const query = (h: Harness, token: string, id: number) => h.call("POST", `/databases/${id}/query`, { token, json: { sql: "SELECT name FROM items ORDER BY id" } });
const save = async (h: Harness, token: string, body: Record<string, unknown>) => {
  const res = await h.call("POST", "/databases/add_db_connection", { token, json: body });
  if (res.status !== 201) throw new Error(`saving failed: ${res.status} ${res.text}`);
  return res.body.db_connection.id as number;
};

describe("pulse secrets rotate", () => {
  it("re-seals every password and channel URL under SECRETS_KEY, after which the new key alone opens them and the old one no longer does", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const maria = await save(a, user.token, target.body);
    const sqlite = await save(a, user.token, (await sqliteTarget(a.sqliteRoot)).body);
    const hookPath = `/rotate-${user.id}`;
    const channel = await addWebhook(a, user.token, `${hooks.url}${hookPath}`);
    // Saved by an instance already on the new key: nothing to do for it.
    const rolling = await instance(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A });
    const fresh = await save(rolling, user.token, (await sqliteTarget(a.sqliteRoot)).body);
    const before = { maria: await sealedPassword(a, maria), fresh: await sealedPassword(a, fresh), channel: await sealedUrl(a, channel) };

    const run = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe("3 re-sealed under SECRETS_KEY, 1 already under it\n");
    expect(run.stderr).toBe("");
    expect(await sealedPassword(a, maria)).not.toBe(before.maria);
    expect(await sealedUrl(a, channel)).not.toBe(before.channel);
    expect(await sealedPassword(a, fresh)).toBe(before.fresh);
    expect(openSealed(await sealedPassword(a, maria), [Buffer.from(KEY_B, "hex")], sealContext(user.id)).plain).toBe(target.password);

    const newOnly = await instance(a, { SECRETS_KEY: KEY_B });
    const ran = await query(newOnly, user.token, maria);
    expect(ran.status, ran.text).toBe(200);
    expect(ran.body.data.rows).toEqual([["one"], ["two"]]);
    expect((await newOnly.call("POST", `/databases/${sqlite}/query`, { token: user.token, json: { sql: "SELECT count(*) FROM Artist" } })).status).toBe(200);
    const sent = await newOnly.call("POST", `/api/channels/${channel}/test`, { token: user.token });
    expect(sent.status, sent.text).toBe(200);
    expect(hooks.at(hookPath)).toHaveLength(1);

    // The old key alone now fails as any key that is not the one always has: 500 for the
    // password (nothing of it in the answer), 400 for the channel's test send.
    const oldOnly = await instance(a, { SECRETS_KEY: KEY_A });
    const refused = await query(oldOnly, user.token, maria);
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 500, code: "internal_error" });
    const notSent = await oldOnly.call("POST", `/api/channels/${channel}/test`, { token: user.token });
    expect({ status: notSent.status, code: notSent.body.code }).toEqual({ status: 400, code: "connection_failed" });
    expect(hooks.at(hookPath)).toHaveLength(1);

    // Once is enough: again, nothing to re-seal.
    const again = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, "--json");
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ resealed: 0, current: 4, unreadable: [], changing: [] });
    const without = await rotate(a, { SECRETS_KEY: KEY_B }, "--json");
    expect(JSON.parse(without.stdout)).toEqual({ resealed: 0, current: 4, unreadable: [], changing: [] });
  });

  it("lists what no key given opens by table and id, leaves it as it is, re-seals the rest and exits 1", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const readable = await save(a, user.token, (await sqliteTarget(a.sqliteRoot)).body);
    const stranger = await instance(a, { SECRETS_KEY: KEY_C });
    const lost = await save(stranger, user.token, (await sqliteTarget(a.sqliteRoot)).body);
    const lostChannel = await addWebhook(stranger, user.token, `${hooks.url}/lost-${user.id}`);
    const before = { lost: await sealedPassword(a, lost), lostChannel: await sealedUrl(a, lostChannel) };

    const run = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(
      `1 re-sealed under SECRETS_KEY, 0 already under it\n` +
        `2 opened by no key given (SECRETS_KEY, SECRETS_KEY_PREVIOUS), left as they are: db_connections ${lost}, notification_channels ${lostChannel}\n`,
    );
    expect(await sealedPassword(a, lost)).toBe(before.lost);
    expect(await sealedUrl(a, lostChannel)).toBe(before.lostChannel);
    expect(openSealed(await sealedPassword(a, readable), [Buffer.from(KEY_B, "hex")], sealContext(user.id)).keyIndex).toBe(0);

    const json = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, "--json");
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      resealed: 0,
      current: 1,
      unreadable: [
        { table: "db_connections", id: lost },
        { table: "notification_channels", id: lostChannel },
      ],
      changing: [],
    });
    // Given the key it was sealed under, it is re-sealed like the rest.
    const found = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: `${KEY_A},${KEY_C}` }, "--json");
    expect(found.code).toBe(0);
    expect(JSON.parse(found.stdout)).toMatchObject({ resealed: 2, current: 1, unreadable: [] });
  });

  it("never overwrites a value the service changed between the read and the write (compare-and-set)", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const id = await save(a, user.token, target.body);
    // The service saves a new password meanwhile, sealed under the new key: its transaction
    // holds the row while the rotation, which read the old value, comes to write it.
    const theirs = sealSecret("changed-by-the-service", Buffer.from(KEY_B, "hex"), sealContext(user.id));
    const service = new pg.Client({ connectionString: pgUrl(a.pgDatabase!.name) });
    await service.connect();
    try {
      await service.query("BEGIN");
      await service.query("UPDATE db_connections SET password_sealed = $1 WHERE id = $2", [theirs, id]);
      const running = rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, "--json");
      await rotationWaitsOnALock(a);
      await service.query("COMMIT");
      const run = await running;
      expect(run.code, run.stderr).toBe(0);
      // Read again after the miss: the service's value, already under the new key.
      expect(JSON.parse(run.stdout)).toEqual({ resealed: 0, current: 1, unreadable: [], changing: [] });
      expect(await sealedPassword(a, id)).toBe(theirs);
    } finally {
      await service.end();
    }
  });

  it("says in one line, and prints no sealed value, when the store fails mid-way (exit 5): the key being replaced may be the leaked one", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const id = await save(a, user.token, target.body);
    const old = await sealedPassword(a, id);
    // The service holds the row past the store's statement timeout: the rotation's UPDATE is
    // cancelled by PostgreSQL, and the error names the statement and its bound values.
    const service = new pg.Client({ connectionString: pgUrl(a.pgDatabase!.name) });
    await service.connect();
    try {
      await service.query("BEGIN");
      await service.query("SELECT 1 FROM db_connections WHERE id = $1 FOR UPDATE", [id]);
      for (const args of [[], ["--json"]]) {
        const run = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A, STORE_QUERY_TIMEOUT_MS: "300" }, ...args);
        expect(run.code, run.stderr).toBe(5);
        // The store's reason and what to do, not Drizzle's statement and a stack.
        expect(run.stderr).toMatch(/^pulse secrets rotate: the store failed mid-way \(canceling statement due to statement timeout\); .*run it again/);
        expect(run.stderr.trim().split("\n"), run.stderr).toHaveLength(1);
        if (args.length > 0) expect(JSON.parse(run.stdout)).toEqual({ error: "store_unavailable", detail: run.stderr.trim() });
        expect(run.stderr + run.stdout).not.toMatch(/v1:[A-Za-z0-9+/]{20}/);
        expect(run.stderr + run.stdout).not.toContain(old.slice(3, 30));
      }
    } finally {
      await service.query("ROLLBACK");
      await service.end();
    }
    expect(await sealedPassword(a, id)).toBe(old);
  });

  it("stops after the batch it is on at SIGINT or SIGTERM, and says what it did (as JSON with --json), exiting 130 or 143", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const channel = await addWebhook(a, user.token, `${hooks.url}/stopped-${user.id}`);
    const channelBefore = await sealedUrl(a, channel);
    const service = new pg.Client({ connectionString: pgUrl(a.pgDatabase!.name) });
    await service.connect();
    try {
      for (const [signal, code, args] of [["SIGINT", 130, ["--json"]], ["SIGTERM", 143, []]] as const) {
        // The signal comes while the batch of connections waits on this row; the channels'
        // batch is next, and is left for the next run.
        const id = await save(a, user.token, target.body);
        await service.query("BEGIN");
        await service.query("SELECT 1 FROM db_connections WHERE id = $1 FOR UPDATE", [id]);
        const running = rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, ...args);
        let stderr = "";
        running.child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        await rotationWaitsOnALock(a);
        running.child.kill(signal);
        await until(async () => stderr.includes("stopping after the current batch"));
        await service.query("ROLLBACK");
        const run = await running;
        expect(run.code, run.stderr).toBe(code);
        const said = `pulse secrets rotate: interrupted (${signal}) before every value was walked; what was re-sealed stays so: run it again to finish`;
        expect(run.stderr).toBe(`pulse secrets rotate: ${signal}: stopping after the current batch (again to stop at once)\n${said}\n`);
        const report = { resealed: 1, current: signal === "SIGINT" ? 0 : 1, unreadable: [], changing: [] };
        if (args.length > 0) expect(JSON.parse(run.stdout)).toEqual({ error: "interrupted", detail: said, report });
        else expect(run.stdout).toBe(`1 re-sealed under SECRETS_KEY, 1 already under it\n`);
        expect(openSealed(await sealedPassword(a, id), [Buffer.from(KEY_B, "hex")], sealContext(user.id)).keyIndex).toBe(0);
        expect(await sealedUrl(a, channel)).toBe(channelBefore);
      }
    } finally {
      await service.end();
    }
    // Run again, it goes on to the end.
    const rest = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, "--json");
    expect(rest.code, rest.stderr).toBe(0);
    expect(JSON.parse(rest.stdout)).toEqual({ resealed: 1, current: 2, unreadable: [], changing: [] });
  });

  it("refuses a store whose schema is not this Pulse's, changing nothing (exit 5): a newer Pulse's may seal values this one does not know", async () => {
    const a = await deployment();
    const user = await a.newUser();
    const id = await save(a, user.token, target.body);
    const old = await sealedPassword(a, id);
    // Exit 0 would tell the operator every sealed value is under SECRETS_KEY, and to drop the
    // key the values of a newer Pulse's own columns are still under.
    await pgAdmin("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('future', 9999999999999)", a.pgDatabase!.name);
    const newer = await rotate(a, { SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A }, "--json");
    expect(newer.code, newer.stderr).toBe(5);
    expect(JSON.parse(newer.stdout)).toEqual({ error: "failed", detail: expect.stringContaining("the store's schema is newer than this Pulse") });
    expect(newer.stderr.trim().split("\n")).toHaveLength(1);
    expect(await sealedPassword(a, id)).toBe(old);

    const empty = await createPgDatabase("rt_rotate");
    try {
      const none = await rotate(a, { DATABASE_URL: empty.url, SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A });
      expect(none.code, none.stderr).toBe(5);
      expect(none.stderr).toMatch(/^DATABASE_URL: no Pulse store there \(no migrations applied\)/);
      expect(none.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await empty.drop();
    }
  });

  it("walks each table a batch at a time, to its last row", async () => {
    const a = await deployment();
    const user = await a.newUser();
    for (let i = 0; i < 5; i++) await save(a, user.token, (await sqliteTarget(a.sqliteRoot)).body);
    for (let i = 0; i < 3; i++) await addWebhook(a, user.token, `${hooks.url}/batch-${user.id}-${i}`);
    const keys = [Buffer.from(KEY_B, "hex"), Buffer.from(KEY_A, "hex")];
    expect(await rotateSealedValues(a.deps.store.db, keys, { batchRows: 2 })).toEqual({ resealed: 8, current: 0, unreadable: [], changing: [] });
    expect(await rotateSealedValues(a.deps.store.db, keys, { batchRows: 2 })).toEqual({ resealed: 0, current: 8, unreadable: [], changing: [] });
  });

  it("refuses what it does not take with exit 2, and bad settings with exit 5, echoing no key", async () => {
    for (const args of [["secrets"], ["secrets", "rotat"], ["secrets", "rotate", "now"], ["secrets", "rotate", "--jsn"]]) {
      const run = await pulse(args, {});
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toContain("usage: pulse secrets rotate [--json]");
      expect(run.stdout, args.join(" ")).toBe("");
    }
    expect(JSON.parse((await pulse(["secrets", "rotat", "--json"], {})).stdout)).toMatchObject({ error: "bad_argument" });

    const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-rotate-"));
    try {
      const run = await pulse(["secrets", "rotate", "--json"], { DATA_DIR: dataDir, DATABASE_URL: "postgresql://nobody@127.0.0.1:1/none", SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: `${KEY_A},${KEY_B}` });
      expect(run.code).toBe(5);
      expect(JSON.parse(run.stdout)).toMatchObject({ error: "failed", detail: expect.stringContaining("SECRETS_KEY_PREVIOUS: item 2 of 2 is the current SECRETS_KEY") });
      for (const key of [KEY_A, KEY_B]) expect(run.stdout + run.stderr).not.toContain(key);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("is listed by pulse --help", async () => {
    const help = await pulse(["--help"], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("secrets rotate [--json]");
  });
});

describe("pulse secrets rotate on the embedded store", () => {
  it("re-seals what the stopped server saved, and waits for no running one (exit 4)", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-rotate-"));
    const keyA = Buffer.from(KEY_A, "hex");
    const location = { pgliteDir: path.join(dataDir, "pglite") };
    try {
      let store = await openStore(location);
      await store.migrate();
      const user = (await insertUser(store.db, { name: "Rotating", email: `rotate-${Date.now()}@example.com`, passwordHash: "x" }))!;
      const connection = await insertConnection(store.db, {
        ownerId: user.id,
        name: "c",
        dbType: "sqlite",
        databaseName: "c.sqlite",
        passwordSealed: sealSecret("embedded-secret", keyA, sealContext(user.id)),
      });
      const channel = await insertChannel(store.db, {
        ownerId: user.id,
        kind: "webhook",
        name: "w",
        urlSealed: sealSecret("https://hooks.example.com/embedded-token", keyA, channelSealContext(user.id)),
        urlHint: "https://hooks.example.com",
      });
      const env = { DATA_DIR: dataDir, SECRETS_KEY: KEY_B, SECRETS_KEY_PREVIOUS: KEY_A };

      const busy = await pulse(["secrets", "rotate"], env);
      expect(busy.code).toBe(4);
      expect(busy.stderr).toContain("is in use by pid");
      await store.close();

      const run = await pulse(["secrets", "rotate", "--json"], env);
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ resealed: 2, current: 0, unreadable: [], changing: [] });

      store = await openStore(location);
      try {
        const keyB = [Buffer.from(KEY_B, "hex")];
        const [c] = await sealedRows(store.db, { table: "db_connections", column: "password_sealed" }, [connection.id]);
        expect(openSealed(c!.sealed, keyB, sealContext(user.id)).plain).toBe("embedded-secret");
        const [w] = await sealedRows(store.db, { table: "notification_channels", column: "url_sealed" }, [channel.id]);
        expect(openSealed(w!.sealed, keyB, channelSealContext(user.id)).plain).toBe("https://hooks.example.com/embedded-token");
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

async function until(condition: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Until the rotation's UPDATE on `a`'s store waits for a row lock the test holds. */
async function rotationWaitsOnALock(a: Harness) {
  await until(async () => {
    const waiting = await pgAdmin<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pulse' AND wait_event_type = 'Lock' AND query LIKE '%UPDATE%'",
      "postgres",
      [a.pgDatabase!.name],
    );
    return Number(waiting[0]!.n) > 0;
  });
}
