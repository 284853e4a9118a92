// How Pulse starts when a setting points at nothing, and who may open an embedded store:
// each case is a real process (dist/, so `npm run build` first), judged by its exit and stderr.

import { execFile } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Redis } from "ioredis";
import pg from "pg";

import { projectPath } from "../../src/paths.js";
import { spawnPulse, startPulse, type RunningPulse } from "../support/pulse-process.js";
import { createPgDatabase, PG, REDIS_URL, uniqueName } from "../support/services.js";
import { startTcpRelay } from "../support/tcp-relay.js";

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), "pulse-faults-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** Runs the server with `env` until it exits, which it must do by itself within `withinMs`. */
async function failedStart(env: Record<string, string>, withinMs: number) {
  const started = Date.now();
  const p = spawnPulse({ DATA_DIR: tempDir(), PORT: "0", HOST: "127.0.0.1", ...env });
  const timer = setTimeout(() => p.child.kill("SIGKILL"), withinMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, stderr: p.stderr().trim(), ms: Date.now() - started };
}

/** One line, naming the setting, without a driver's stack or its unhandled-event noise. */
function expectOneLine(stderr: string, setting: string, reason: RegExp) {
  expect(stderr.split("\n")).toHaveLength(1);
  expect(stderr.startsWith(`${setting}: `)).toBe(true);
  expect(stderr).toMatch(reason);
  expect(stderr).not.toMatch(/ioredis|Unhandled|\n\s+at /);
}

describe("start-up with a wrong REDIS_URL", () => {
  it.each([
    ["a closed port", "redis://127.0.0.1:1", /127\.0\.0\.1:1 \(connection refused\)/],
    ["an unknown host", "redis://no-such-host.invalid:6379", /no-such-host\.invalid:6379 \(host not found|host name lookup failed\)/],
    ["a malformed URL", "redis://127.0.0.1:notaport", /not a valid URL/],
    // ioredis went on in database 0 (beside whatever uses it) when the server refused the number.
    ["a database the server does not have", "redis://127.0.0.1:6379/99", /Redis at 127\.0\.0\.1:6379\/99 has no database 99 \(.*DB index is out of range/],
  ])("ends with one line naming REDIS_URL for %s", async (_what, url, reason) => {
    const { code, signal, stderr, ms } = await failedStart({ REDIS_URL: url }, 20_000);
    expect(signal).toBeNull();
    expect(code).not.toBe(0);
    expectOneLine(stderr, "REDIS_URL", reason);
    expect(ms).toBeLessThan(20_000);
  });
});

describe("what a driver writes to the console while connecting", () => {
  it("goes to the log as JSON lines like the rest", async () => {
    const prefix = `${uniqueName("pulse_console")}:`;
    // A password this Redis does not ask for: ioredis warns on the console as it connects.
    const pulse = await startPulse({ DATA_DIR: tempDir(), REDIS_URL: "redis://:not-needed@127.0.0.1:6379/0", REDIS_PREFIX: prefix, LOG_FORMAT: "json" });
    try {
      await pulse.stop();
      const lines = pulse.stdout().trim().split("\n");
      for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
      expect(lines.map((line) => JSON.parse(line) as { via?: string; msg: string })).toContainEqual(
        expect.objectContaining({ via: "console", msg: expect.stringMatching(/does not require a password/) }),
      );
    } finally {
      await pulse.stop();
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});

describe("start-up where it cannot listen", () => {
  it("ends with one line naming PORT when another process listens on it", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const { code, signal, stderr } = await failedStart({ PORT: String(port) }, 30_000);
      expect(signal).toBeNull();
      expect(code).toBe(1);
      expectOneLine(stderr, "PORT", new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("ends with one line naming HOST when the address is not this machine's", async () => {
    const { code, stderr } = await failedStart({ HOST: "192.0.2.1" }, 30_000);
    expect(code).toBe(1);
    expectOneLine(stderr, "HOST", /cannot listen on 192\.0\.2\.1:0: address not available on this machine/);
  });
});

describe("start-up with a wrong DATABASE_URL", () => {
  it.each([
    ["a closed port", "postgresql://postgres@127.0.0.1:1/pulse", /connection refused/],
    ["an unknown host", "postgresql://postgres@no-such-host.invalid/pulse", /host not found|host name lookup failed/],
    ["a missing database", "postgresql://postgres@127.0.0.1:5432/pulse_no_such_db_zz", /does not exist/],
  ])("ends with one line naming DATABASE_URL for %s", async (_what, url, reason) => {
    const { code, signal, stderr, ms } = await failedStart({ DATABASE_URL: url }, 20_000);
    expect(signal).toBeNull();
    expect(code).not.toBe(0);
    expectOneLine(stderr, "DATABASE_URL", reason);
    expect(ms).toBeLessThan(20_000);
  });

  it("never prints the URL's password", async () => {
    const { stderr } = await failedStart({ DATABASE_URL: "postgresql://postgres:hunter2secret@127.0.0.1:1/pulse" }, 20_000);
    expectOneLine(stderr, "DATABASE_URL", /connection refused/);
    expect(stderr).not.toContain("hunter2secret");
  });
});

describe("start-up while another instance holds the migration lock, or the store stops answering", () => {
  const dbs: Awaited<ReturnType<typeof createPgDatabase>>[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });
  const metaDb = async () => {
    const db = await createPgDatabase("pulse_meta");
    dbs.push(db);
    return db;
  };

  it("ends with one line naming DATABASE_URL when the store stops answering at the migration lock", async () => {
    const db = await metaDb();
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    try {
      relay.freezeOn("pg_try_advisory_lock");
      const { code, signal, stderr } = await failedStart({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${relay.port}/${db.name}` }, 40_000);
      expect(signal).toBeNull();
      expect(code).not.toBe(0);
      expectOneLine(stderr, "DATABASE_URL", /stopped answering while this instance waited for the migration lock \(Query read timeout\)/);
    } finally {
      await relay.close();
    }
  }, 60_000);

  // The migration connection allows a migration's own statement an hour; the quick questions
  // around it (which migrations the store has, Drizzle's journal table) are bounded as the lock's.
  it("ends with one line naming DATABASE_URL when the store stops answering as the migration journal is read", async () => {
    const db = await metaDb();
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    try {
      relay.freezeOn("to_regclass");
      const { code, signal, stderr } = await failedStart({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${relay.port}/${db.name}` }, 40_000);
      expect(signal).toBeNull();
      expect(code).toBe(1);
      expectOneLine(stderr, "DATABASE_URL", /reading the migration journal from PostgreSQL at 127\.0\.0\.1:\d+\/\w+ failed \(Query read timeout\)/);
    } finally {
      await relay.close();
    }
  }, 60_000);

  it("says it is applying migrations, and ends with one line when the store stops answering Drizzle's journal set-up", async () => {
    const db = await metaDb();
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    try {
      relay.freezeOn("CREATE SCHEMA IF NOT EXISTS");
      const p = spawnPulse({ DATA_DIR: tempDir(), PORT: "0", HOST: "127.0.0.1", LOG_FORMAT: "json", DATABASE_URL: `postgresql://postgres@127.0.0.1:${relay.port}/${db.name}` });
      const timer = setTimeout(() => p.child.kill("SIGKILL"), 40_000);
      const { code, signal } = await p.exited;
      clearTimeout(timer);
      expect(signal).toBeNull();
      expect(code).toBe(1);
      expectOneLine(p.stderr().trim(), "DATABASE_URL", /migrating the store failed \(Query read timeout\)/);
      const known = (JSON.parse(readFileSync(projectPath("migrations/meta/_journal.json"), "utf8")) as { entries: unknown[] }).entries.length;
      const logged = p.stdout().trim().split("\n").map((line) => JSON.parse(line) as { level: number; msg: string });
      expect(logged).toContainEqual(expect.objectContaining({ level: 30, msg: `applying ${known} migrations` }));
    } finally {
      await relay.close();
    }
  }, 60_000);

  it("starts on a store with nothing pending without Drizzle's journal set-up", async () => {
    const db = await metaDb();
    const first = await startPulse({ DATA_DIR: tempDir(), DATABASE_URL: db.url });
    await first.stop();
    const relay = await startTcpRelay({ host: PG.host, port: PG.port });
    let server: RunningPulse | undefined;
    try {
      relay.freezeOn("CREATE SCHEMA IF NOT EXISTS");
      server = await startPulse({ DATA_DIR: tempDir(), LOG_FORMAT: "json", DATABASE_URL: `postgresql://postgres@127.0.0.1:${relay.port}/${db.name}` }, 40_000);
      expect((await server.call("GET", "/health")).status).toBe(200);
      expect(server.stdout()).not.toContain("applying");
    } finally {
      await server?.stop();
      await relay.close();
    }
  }, 90_000);

  it("waits while another instance migrates, and starts once the lock is free", async () => {
    const db = await metaDb();
    const holder = new pg.Client({ host: PG.host, port: PG.port, user: PG.user, database: db.name });
    await holder.connect();
    let server: RunningPulse | undefined;
    try {
      await holder.query("SELECT pg_advisory_lock(7311520431)");
      const starting = startPulse({ DATA_DIR: tempDir(), DATABASE_URL: `postgresql://postgres@${PG.host}:${PG.port}/${db.name}` }, 60_000);
      await new Promise((r) => setTimeout(r, 3_000));
      const tables = await holder.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'users'");
      expect(tables.rows[0].n, "no migration while the lock is held").toBe(0);
      await holder.query("SELECT pg_advisory_unlock(7311520431)");
      server = await starting;
      expect((await server.call("GET", "/health")).status).toBe(200);
    } finally {
      await server?.stop();
      await holder.end();
    }
  }, 90_000);
});

describe("start-up on a store this Pulse cannot serve", () => {
  const dbs: Awaited<ReturnType<typeof createPgDatabase>>[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });

  it("ends with one line naming DATABASE_URL when a newer Pulse migrated the store", async () => {
    const db = await createPgDatabase("pulse_newer");
    dbs.push(db);
    const server = await startPulse({ DATA_DIR: tempDir(), DATABASE_URL: db.url });
    await server.stop();
    await db.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('future', 9999999999999)");
    const { code, stderr } = await failedStart({ DATABASE_URL: db.url }, 30_000);
    expect(code).toBe(1);
    expectOneLine(stderr, "DATABASE_URL", /the store's schema is newer than this Pulse \(\d+ migrations applied, this build knows \d+\); run the newer Pulse or restore a backup/);
  }, 90_000);

  it("ends with one line naming DATABASE_URL when the database is not Pulse's", async () => {
    const db = await createPgDatabase("pulse_foreign");
    dbs.push(db);
    await db.query("CREATE TABLE users (id int)");
    const { code, stderr } = await failedStart({ DATABASE_URL: db.url }, 30_000);
    expect(code).toBe(1);
    expectOneLine(stderr, "DATABASE_URL", /the database is not Pulse's/);
  }, 60_000);
});

describe("start-up on a DATA_DIR it cannot use", () => {
  /** Runs `src/main.js` as a user permissions stop: this one, or nobody when the tests run as
   * root (whom no permission stops). */
  function startUnprivileged(env: Record<string, string>) {
    const asRoot = process.getuid?.() === 0;
    const [command, args] = asRoot
      ? ["setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", process.execPath, projectPath("dist/src/main.js")]]
      : [process.execPath, [projectPath("dist/src/main.js")]];
    return new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        command,
        args,
        { env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", ...env }, timeout: 60_000 },
        (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr: stderr.trim() }),
      );
    });
  }
  /** A directory anyone may enter but no one but root write. */
  const readOnlyDir = () => {
    const dir = tempDir();
    chmodSync(dir, 0o555);
    return dir;
  };

  it("ends with one line naming DATA_DIR when it is a file", async () => {
    const file = path.join(tempDir(), "data");
    writeFileSync(file, "");
    const { code, stderr } = await failedStart({ DATA_DIR: file }, 20_000);
    expect(code).toBe(1);
    expectOneLine(stderr, "DATA_DIR", new RegExp(`${file}/secrets\\.json \\(a part of the path is a file, not a directory\\)`));
  });

  it("names the write it was refused in a read-only DATA_DIR, not a missing file", async () => {
    const dataDir = readOnlyDir();
    const { code, stderr } = await startUnprivileged({ DATA_DIR: dataDir });
    expect(code).toBe(1);
    expectOneLine(stderr, "DATA_DIR", new RegExp(`cannot write ${dataDir}/secrets\\.json \\(permission denied\\)`));
  });

  it("names the store it may not open, instead of an Emscripten errno", async () => {
    const dataDir = tempDir();
    const made = spawnPulse({ DATA_DIR: dataDir }, "src/cli/pulse.js", ["migrate"]);
    expect((await made.exited).code, made.stderr()).toBe(0);
    chmodSync(dataDir, 0o777);
    const store = path.join(dataDir, "pglite");
    chmodSync(store, 0o000);
    try {
      const secrets = { JWT_SECRET: "j".repeat(32), SECRETS_KEY: "a".repeat(64) };
      const { code, stderr } = await startUnprivileged({ DATA_DIR: dataDir, ...secrets });
      expect(code).toBe(1);
      expectOneLine(stderr, "DATA_DIR", new RegExp(`cannot open ${store} \\(permission denied\\)`));
    } finally {
      chmodSync(store, 0o700); // for the clean-up
    }
  }, 90_000);
});

describe("one process per embedded store", () => {
  const dataDir = tempDir();
  let server: RunningPulse;
  beforeAll(async () => {
    server = await startPulse({ DATA_DIR: dataDir });
  }, 120_000);
  afterAll(async () => server?.stop());

  /** Runs one of Pulse's commands on the server's DATA_DIR until it exits. */
  async function run(script: string, args: string[] = []) {
    const p = spawnPulse({ DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" }, script, args);
    const timer = setTimeout(() => p.child.kill("SIGKILL"), 60_000);
    const { code } = await p.exited;
    clearTimeout(timer);
    return { code, stderr: p.stderr().trim() };
  }

  it("refuses a second server with one line naming the one that holds the store", async () => {
    const { code, stderr } = await run("src/main.js");
    expect(code).toBe(1);
    expectOneLine(stderr, "DATA_DIR", new RegExp(`in use by another process \\(pid ${server.child.pid}\\b`));
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
  }, 90_000);

  it("pulse check says why it cannot run beside the server and what to run instead", async () => {
    const { code, stderr } = await run("src/cli/pulse.js", ["check", "7"]);
    expect(code).toBe(4);
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toContain(`in use by pid ${server.child.pid}`);
    expect(stderr).toContain("POST /api/tables/7/run");
  }, 90_000);

  it("pulse migrate says the server applies migrations itself", async () => {
    const { code, stderr } = await run("src/cli/pulse.js", ["migrate"]);
    expect(code).toBe(4); // as pulse check's
    // The holder by its path in the project (dist/src/main.js when built), not a shortened one.
    expect(stderr).toMatch(/\(dist\/src\/main\.js\)/);
    expect(stderr.split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/in use by pid \d+ .*applies pending migrations itself/);
  }, 90_000);

  it("takes over the lock of a server killed with SIGKILL, then names a damaged store instead of aborting", async () => {
    server.child.kill("SIGKILL");
    await server.exited;
    server = await startPulse({ DATA_DIR: dataDir });
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
    await server.stop();

    // What a lost WAL looks like to PostgreSQL: "could not locate a valid checkpoint record".
    const wal = path.join(dataDir, "pglite", "pg_wal");
    for (const segment of readdirSync(wal).filter((name) => /^[0-9A-F]{24}$/.test(name))) rmSync(path.join(wal, segment));
    const { code, stderr } = await run("src/main.js");
    expect(code).toBe(1);
    expectOneLine(stderr, "DATA_DIR", /the embedded store .*pglite is damaged.*Move it aside \(mv .*pglite .*\.damaged\)/);
  }, 180_000);
});
