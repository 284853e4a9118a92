// A mariadbd of the test's own, on a free port, in a fresh data directory: for server settings
// a test must not change on the shared MariaDB (a global sql_mode, say). About 5 s to start.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";

import { freePort } from "./pulse-process.js";

export interface PrivateMariadb {
  port: number;
  /** Runs `sql` as root (no password). */
  admin(sql: string): Promise<unknown>;
  stop(): Promise<void>;
}

/** `options` are server options without their dashes, e.g. `["sql-mode=ANSI"]`. */
export async function startPrivateMariadb(options: readonly string[] = []): Promise<PrivateMariadb> {
  const dir = await mkdtemp(path.join(tmpdir(), "pulse-mariadb-"));
  const datadir = path.join(dir, "data");
  await promisify(execFile)("mariadb-install-db", ["--no-defaults", `--datadir=${datadir}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"]);
  const port = await freePort();
  const child: ChildProcess = spawn(
    "mariadbd",
    [
      "--no-defaults",
      `--datadir=${datadir}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--socket=${path.join(dir, "mysqld.sock")}`,
      "--user=root",
      "--skip-log-bin",
      "--innodb-buffer-pool-size=16M",
      ...options.map((option) => `--${option}`),
    ],
    { stdio: "ignore" },
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const connect = () => mysql.createConnection({ host: "127.0.0.1", port, user: "root", multipleStatements: false });
  // Up once it answers.
  for (let i = 0; ; i++) {
    try {
      await (await connect()).end();
      break;
    } catch (err) {
      if (i > 300 || child.exitCode !== null) {
        await stop();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    async admin(sql) {
      const conn = await connect();
      try {
        return (await conn.query(sql))[0];
      } finally {
        await conn.end();
      }
    },
    stop,
  };
}
