// A statement waits for a pooled connection at most its own timeout: the statements ahead may
// hold every connection for theirs (mysql2 bounds that wait not at all, pg only by the connect
// timeout). A connection that comes free after the wait gave up goes straight back. A pool with
// room opens a new connection instead, which the connect timeout bounds and names when it fails.

import { DomainError } from "../../errors.js";

export interface PoolToWaitOn<C> {
  acquire(): Promise<C>;
  giveBack(connection: C): void;
  /** Every connection is open and in use: an acquire waits for one to come free. */
  full(): boolean;
  size: number;
  where: string;
}

export function connectionWithin<C>(pool: PoolToWaitOn<C>, ms: number): Promise<C> {
  if (!pool.full()) return pool.acquire();
  return new Promise((resolve, reject) => {
    let waiting = true;
    const timer = setTimeout(() => {
      waiting = false;
      reject(new DomainError("query_timeout", `No connection to ${pool.where} came free within ${ms} ms: statements ahead hold all ${pool.size}`, { timeout_ms: ms }));
    }, ms);
    pool.acquire().then(
      (connection) => {
        if (!waiting) return pool.giveBack(connection);
        waiting = false;
        clearTimeout(timer);
        resolve(connection);
      },
      (err: unknown) => {
        if (!waiting) return;
        waiting = false;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
