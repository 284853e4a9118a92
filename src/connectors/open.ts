// Opens a driver for a connection target: the single dispatch point from dialect to driver.
// Drivers load on first use, so start-up does not pay for dialects nobody connects to.

import type { ConnectionTarget, DialectDriver } from "./types.js";

export interface PoolOptions {
  /** Server connections per pool at most. */
  maxConnections: number;
  /** Close pooled connections unused for this long. */
  idleTimeoutMs: number;
  /** SQLite: address space of its process in MiB (0: unbounded; default in drivers/sqlite.ts). */
  sqliteMemoryMb?: number;
}

export const DEFAULT_POOL_OPTIONS: PoolOptions = { maxConnections: 4, idleTimeoutMs: 60_000 };

export async function openDriver(target: ConnectionTarget, options: PoolOptions = DEFAULT_POOL_OPTIONS): Promise<DialectDriver> {
  switch (target.dialect) {
    case "postgresql":
      return (await import("./drivers/postgres.js")).createPostgresDriver(target, options);
    case "mysql":
      return (await import("./drivers/mysql.js")).createMysqlDriver(target, options);
    case "sqlite":
      return (await import("./drivers/sqlite.js")).createSqliteDriver(target, { idleTimeoutMs: options.idleTimeoutMs, memoryMb: options.sqliteMemoryMb });
  }
}
