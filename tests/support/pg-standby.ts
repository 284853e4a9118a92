// A throwaway PostgreSQL primary and its streaming-replication hot standby, owned by one test
// file: initdb into a fresh temp dir, pg_basebackup -R, both on free loopback ports. Nothing
// here skips: a missing binary or a server that will not start throws with the reason.

import { execFile, execFileSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

import pg from "pg";

export const PG_BIN = "/usr/lib/postgresql/15/bin";
const OS_USER = "postgres";
const DB_USER = "postgres";
const HOST = "127.0.0.1";

export interface PgNode {
  host: string;
  port: number;
  dataDir: string;
  /** postgresql:// URL of `database` (default: the pair's database). */
  url(database?: string): string;
}

export interface PgStandbyPair {
  primary: PgNode;
  standby: PgNode;
  /** The database tests work in (`postgres`), the same on both servers. */
  database: string;
  /** Runs one statement on the primary as the superuser. */
  onPrimary<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs one statement on the standby as the superuser (read-only: it is in recovery). */
  onStandby<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** The primary's WAL flushed so far: every committed write is before it, and the standby
   * can be sent all of it. */
  primaryLsn(): Promise<string>;
  /** Resolves once the standby has received (`received`) or replayed (default) WAL up to `lsn`
   * (default: the primary's current position); throws after `timeoutMs`. */
  waitFor(what: "replayed" | "received", lsn?: string, timeoutMs?: number): Promise<void>;
  /** Stops applying WAL on the standby (it keeps receiving it): replay lag on demand. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Stops both servers (immediate) and removes their directories. */
  stop(): Promise<void>;
  /** How long starting the pair took. */
  setupMs: number;
}

export async function startPgStandbyPair(): Promise<PgStandbyPair> {
  const startedAt = performance.now();
  for (const bin of ["initdb", "pg_ctl", "pg_basebackup", "postgres"]) {
    if (!existsSync(path.join(PG_BIN, bin))) throw new Error(`pg-standby: ${path.join(PG_BIN, bin)} is missing`);
  }
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? osUserIds(OS_USER) : null;

  const root = mkdtempSync(path.join(tmpdir(), "pulse-pg-standby-"));
  // initdb and postgres refuse to run as root; the servers' user must own everything under here.
  if (ids) chownSync(root, ids.uid, ids.gid);
  const primaryDir = path.join(root, "primary");
  const standbyDir = path.join(root, "standby");
  const run = (bin: string, args: string[], timeoutMs = 60_000) => runAs(asRoot, root, bin, args, timeoutMs);

  const started: string[] = [];
  const stopServers = () => {
    for (const dir of started.splice(0).reverse()) {
      try {
        execFileSync(...command(asRoot, path.join(PG_BIN, "pg_ctl"), ["-D", dir, "-m", "immediate", "-w", "stop"]), { cwd: root, stdio: "ignore", timeout: 30_000 });
      } catch {
        // already stopped (or never started): nothing to stop
      }
    }
  };
  // A worker that dies without stop() must not leave two postmasters behind.
  const onExit = () => {
    stopServers();
    rmSync(root, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  try {
    const [primaryPort, standbyPort] = await twoFreePorts();
    await run("initdb", ["-D", primaryDir, "-U", DB_USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
    appendFileSync(
      path.join(primaryDir, "postgresql.conf"),
      conf({
        listen_addresses: `'${HOST}'`,
        port: primaryPort,
        unix_socket_directories: `'${root}'`,
        shared_buffers: "'16MB'",
        max_connections: 40,
        fsync: "off",
        full_page_writes: "off",
        wal_level: "replica",
        max_wal_senders: 4,
        hot_standby: "on",
        // Row estimates (pg_class.reltuples) change only when a test runs ANALYZE: no autovacuum
        // racing the assertions.
        autovacuum: "off",
        logging_collector: "off",
      }),
    );
    writeFileSync(
      path.join(primaryDir, "pg_hba.conf"),
      ["local all all trust", "host all all 127.0.0.1/32 trust", "local replication all trust", "host replication all 127.0.0.1/32 trust", ""].join("\n"),
    );
    started.push(primaryDir); // before starting: a start that timed out may still have started it
    await startServer(run, primaryDir, path.join(root, "primary.log"));

    // Fast checkpoint: the default "spread" one would make setup wait for seconds.
    await run("pg_basebackup", ["-h", HOST, "-p", String(primaryPort), "-U", DB_USER, "-D", standbyDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"]);
    appendFileSync(path.join(standbyDir, "postgresql.conf"), conf({ port: standbyPort, hot_standby: "on" }));
    started.push(standbyDir);
    await startServer(run, standbyDir, path.join(root, "standby.log"));

    const node = (port: number, dataDir: string): PgNode => ({
      host: HOST,
      port,
      dataDir,
      url: (database = "postgres") => `postgresql://${DB_USER}@${HOST}:${port}/${database}`,
    });
    const primary = node(primaryPort, primaryDir);
    const standby = node(standbyPort, standbyDir);
    const onPrimary = <T>(sql: string, params: unknown[] = []) => querySql<T>(primaryPort, sql, params);
    const onStandby = <T>(sql: string, params: unknown[] = []) => querySql<T>(standbyPort, sql, params);
    const primaryLsn = async () => (await onPrimary<{ lsn: string }>("SELECT pg_current_wal_flush_lsn()::text AS lsn"))[0]!.lsn;

    async function waitFor(what: "replayed" | "received", lsn?: string, timeoutMs = 10_000): Promise<void> {
      const target = lsn ?? (await primaryLsn());
      const fn = what === "replayed" ? "pg_last_wal_replay_lsn()" : "pg_last_wal_receive_lsn()";
      const until = Date.now() + timeoutMs;
      for (;;) {
        const [row] = await onStandby<{ done: boolean | null; at: string | null }>(`SELECT ${fn} >= $1::pg_lsn AS done, ${fn}::text AS at`, [target]);
        if (row?.done) return;
        if (Date.now() > until) {
          throw new Error(`pg-standby: the standby has ${what} WAL up to ${row?.at ?? "nothing"}, not ${target}, after ${timeoutMs} ms\n${logTail(root)}`);
        }
        await sleep(20);
      }
    }

    const [recovery] = await onStandby<{ replica: boolean }>("SELECT pg_is_in_recovery() AS replica");
    if (!recovery?.replica) throw new Error("pg-standby: the standby is not in recovery");
    await waitFor("replayed");
    const [receiver] = await onStandby<{ status: string }>("SELECT status FROM pg_stat_wal_receiver");
    if (receiver?.status !== "streaming") throw new Error(`pg-standby: the standby's WAL receiver is ${receiver?.status ?? "not running"}\n${logTail(root)}`);

    return {
      setupMs: performance.now() - startedAt,
      primary,
      standby,
      database: "postgres",
      onPrimary,
      onStandby,
      primaryLsn,
      waitFor,
      async pauseReplay() {
        await onStandby("SELECT pg_wal_replay_pause()");
        // Paused once the startup process says so; from then on nothing more is applied.
        const until = Date.now() + 5_000;
        while ((await onStandby<{ state: string }>("SELECT pg_get_wal_replay_pause_state() AS state"))[0]?.state !== "paused") {
          if (Date.now() > until) throw new Error(`pg-standby: replay did not pause within 5 s\n${logTail(root)}`);
          await sleep(20);
        }
      },
      async resumeReplay() {
        await onStandby("SELECT pg_wal_replay_resume()");
      },
      async stop() {
        process.removeListener("exit", onExit);
        onExit();
      },
    };
  } catch (err) {
    process.removeListener("exit", onExit);
    onExit();
    throw err;
  }
}

function conf(settings: Record<string, string | number>): string {
  return `\n# pulse test pair\n${Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`;
}

async function startServer(run: (bin: string, args: string[], timeoutMs?: number) => Promise<void>, dataDir: string, log: string): Promise<void> {
  try {
    await run("pg_ctl", ["-D", dataDir, "-l", log, "-w", "-t", "30", "start"], 40_000);
  } catch (err) {
    const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-20).join("\n") : "(no log)";
    throw new Error(`${(err as Error).message}\n--- ${path.basename(log)} ---\n${tail}`, { cause: err });
  }
}

function osUserIds(user: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch (err) {
    throw new Error(`pg-standby: the OS user ${user} is needed to run PostgreSQL: ${(err as Error).message}`, { cause: err });
  }
}

/** As root, through runuser (PostgreSQL's tools refuse root); otherwise as ourselves. */
function command(asRoot: boolean, bin: string, args: string[]): [string, string[]] {
  return asRoot ? ["runuser", ["-u", OS_USER, "--", bin, ...args]] : [bin, args];
}

function runAs(asRoot: boolean, cwd: string, bin: string, args: string[], timeoutMs: number): Promise<void> {
  const [file, argv] = command(asRoot, path.join(PG_BIN, bin), args);
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd, timeout: timeoutMs, env: { ...process.env, LC_ALL: "C" } }, (err, stdout, stderr) => {
      if (!err) return resolve();
      reject(new Error(`pg-standby: ${bin} ${args.join(" ")} failed: ${err.message}\n${stderr || stdout}`, { cause: err }));
    });
  });
}

async function querySql<T>(port: number, sql: string, params: unknown[]): Promise<T[]> {
  const client = new pg.Client({ host: HOST, port, user: DB_USER, database: "postgres" });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Ports the kernel just handed out and took back: free unless someone races us for them (then
 * pg_ctl start fails and says so). */
async function twoFreePorts(): Promise<[number, number]> {
  const listen = () =>
    new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(0, HOST, () => resolve(server));
    });
  // Both held open at once, so the kernel cannot hand out the same port twice.
  const servers = [await listen(), await listen()];
  const [a, b] = servers.map((s) => (s.address() as net.AddressInfo).port) as [number, number];
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return [a, b];
}

function logTail(root: string): string {
  return ["primary.log", "standby.log"]
    .map((name) => {
      const file = path.join(root, name);
      return existsSync(file) ? `--- ${name} ---\n${readFileSync(file, "utf8").split("\n").slice(-15).join("\n")}` : "";
    })
    .join("\n");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
