// One pool per server, database and login in this process, however many saved connections
// reach it. Each saved connection had its own: a user's twenty connections to one database held
// twenty pools' idle sockets there (a red-team pass counted 12 backends with a cache of 12, where
// the database's budget lets 4 statements run at once), and a database's max_connections is the
// customer's to spend, not Pulse's. Connections that share a login share what the database
// sees anyway; each keeps its own connector (owner, limits, budgets, audit).
//
// The host as written is part of the key, not only the address it resolves to: a shared pool
// connects, checks TLS names and words its errors by the host of whoever opened it, and a name
// one user controls must never carry another's statements. SQLite is not shared: its driver is
// one process running one statement at a time, so one user's slow read would hold every other
// user of the same file (a review measured a 500 ms statement answering after 1.9 s).

import { createHash } from "node:crypto";

import { canonicalHost } from "../net/resolve.js";
import { openDriver, type PoolOptions } from "./open.js";
import type { ConnectionTarget, DialectDriver } from "./types.js";

interface Held {
  driver: Promise<DialectDriver>;
  holders: number;
}

export class SharedDrivers {
  private readonly held = new Map<string, Held>();

  constructor(private readonly pool: PoolOptions) {}

  /** Pools open now, for tests. */
  get size() {
    return this.held.size;
  }

  /** A driver for `target`, whose database is `targetKey` (target-key.ts): the pool of that
   * database and login, opened on first use. Its close() lets go of this hold; the pool closes
   * with the last. */
  async open(targetKey: string, target: ConnectionTarget): Promise<DialectDriver> {
    if (target.dialect === "sqlite") return openDriver(target, this.pool);
    const key = loginKey(targetKey, target);
    let entry = this.held.get(key);
    if (!entry) {
      const driver = openDriver(target, this.pool);
      const opened: Held = { driver, holders: 0 };
      entry = opened;
      this.held.set(key, opened);
      // A failed opening held nothing: the next asks again.
      driver.catch(() => {
        if (this.held.get(key) === opened) this.held.delete(key);
      });
    }
    entry.holders++;
    let driver: DialectDriver;
    try {
      driver = await entry.driver;
    } catch (err) {
      entry.holders--;
      throw err;
    }
    const shared = entry;
    let released = false;
    return {
      dialect: driver.dialect,
      query: (sql, limits) => driver.query(sql, limits),
      introspect: () => driver.introspect(),
      probe: () => driver.probe(),
      openConnections: () => driver.openConnections(),
      close: async () => {
        if (released) return;
        released = true;
        if (--shared.holders > 0) return;
        // Forgotten first: a hold asked for while it closes opens a new pool.
        if (this.held.get(key) === shared) this.held.delete(key);
        await driver.close();
      },
    };
  }
}

/** The database, the host as written and the login that reaches it: connections alike in all
 * share a pool. The password as a digest, so no key holds it. */
function loginKey(targetKey: string, target: ConnectionTarget): string {
  const password = createHash("sha256").update(target.password).digest("base64url");
  const host = canonicalHost(target.host) ?? target.host;
  return JSON.stringify([targetKey, host, target.username, password, target.ssl, target.connectTimeoutMs]);
}
