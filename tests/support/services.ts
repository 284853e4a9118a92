// Real servers for tests: PostgreSQL, MariaDB and Redis on this machine. Every helper here
// makes uniquely named databases and key prefixes, so suites never collide or depend on leftovers.

import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import pg from "pg";

export const PG = { host: "127.0.0.1", port: 5432, user: "postgres", password: "", database: "test" };
export const MARIADB = { host: "127.0.0.1", port: 3306, user: "root", password: "", database: "test" };
export const REDIS_URL = "redis://127.0.0.1:6379";

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;

export const pgUrl = (database: string) => `postgresql://${PG.user}@${PG.host}:${PG.port}/${database}`;

/** Runs statements as the PostgreSQL superuser against `database` (default `test`). */
export async function pgAdmin<T = unknown>(sql: string, database = PG.database, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ ...PG, database });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Whether every session Pulse opened on `database` (its store's pools and its migration's
 * session) has ended, waiting up to about 5 s: pg-pool's end() resolves before they have. */
export async function untilPulseDisconnected(database: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const [row] = await pgAdmin<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name IN ('pulse', 'pulse-migrate')",
      "postgres",
      [database],
    );
    if (Number(row?.n ?? 0) === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** A fresh PostgreSQL database, a copy of `template` if named; `drop()` removes it (terminating
 * leftover sessions first). */
export async function createPgDatabase(prefix = "pulse_t", template?: string) {
  const name = uniqueName(prefix);
  await pgAdmin(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ""}`);
  return {
    name,
    url: pgUrl(name),
    query: <T = unknown>(sql: string, params: unknown[] = []) => pgAdmin<T>(sql, name, params),
    async drop() {
      await pgAdmin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

export async function mariaAdmin<T = unknown>(sql: string, database?: string): Promise<T[]> {
  const conn = await mysql.createConnection({ ...MARIADB, database: database ?? MARIADB.database });
  try {
    const [rows] = await conn.query(sql);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

export async function createMariaDatabase(prefix = "pulse_t") {
  const name = uniqueName(prefix);
  await mariaAdmin(`CREATE DATABASE \`${name}\``);
  return {
    name,
    query: <T = unknown>(sql: string) => mariaAdmin<T>(sql, name),
    async drop() {
      await mariaAdmin(`DROP DATABASE IF EXISTS \`${name}\``);
    },
  };
}

/** A Redis client whose keys all live under a unique prefix; `cleanup()` deletes them. */
export function redisWithPrefix() {
  const prefix = `${uniqueName("pulse_t")}:`;
  const redis = new Redis(REDIS_URL, { keyPrefix: prefix, lazyConnect: true });
  const raw = new Redis(REDIS_URL, { lazyConnect: true });
  return {
    prefix,
    redis,
    raw,
    async cleanup() {
      const keys = await raw.keys(`${prefix}*`);
      if (keys.length > 0) await raw.del(...keys);
      raw.disconnect();
      if (redis.status !== "end") redis.disconnect();
    },
  };
}
