// A statement waits for a pooled connection at most its own timeout: the statements ahead may
// hold every connection for theirs (mysql2 bounds that wait not at all, pg only by the connect
// timeout). A connection that comes free after the wait gave up goes straight back.

import { DomainError } from "../../errors.js";

export function connectionWithin<C>(
  acquire: () => Promise<C>,
  giveBack: (connection: C) => void,
  ms: number,
  where: string,
  poolSize: number,
): Promise<C> {
  return new Promise((resolve, reject) => {
    let waiting = true;
    const timer = setTimeout(() => {
      waiting = false;
      reject(new DomainError("query_timeout", `No connection to ${where} came free within ${ms} ms: statements ahead hold all ${poolSize}`, { timeout_ms: ms }));
    }, ms);
    acquire().then(
      (connection) => {
        if (!waiting) return giveBack(connection);
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
