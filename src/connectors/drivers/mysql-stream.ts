// Streams one statement's rows from a MySQL/MariaDB connection into a RowCollector without
// holding the whole result, and stops the server once we want no more rows.

import type { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

import type { Connection as CoreConnection, FieldPacket } from "mysql2";

import type { RowCollector } from "./collect.js";
import { valueConverters } from "./mysql-values.js";
import { watchReceivedBytes } from "./wire-limit.js";

/** After the cap is reached, rows still in flight are read and dropped for at most this many
 * rows / this long. sql_select_limit ends a plain SELECT right after the row past the cap, so
 * only results that escape it (their own LIMIT, SHOW, CALL) go further. */
const DRAIN_ROWS = 1_000;
const DRAIN_MS = 100;
/** How long the statement may take to end once told to stop, before the connection is dropped. */
const INTERRUPT_WAIT_MS = 2_000;
const ER_QUERY_INTERRUPTED = 1317;

export interface StreamOutcome {
  fields: FieldPacket[];
  /** False when the statement could not be brought to an end: the connection must be dropped. */
  complete: boolean;
}

/** `interrupt` stops the running statement from elsewhere (KILL QUERY); the connection stays
 * usable. Dropping the socket instead leaves the server running the statement until its next
 * write fails (seen: a busy core for a second). That is still what happens once the statement
 * has sent `wireLimit` bytes: the row in flight is too large to receive at all (mysql2 would
 * join all of its 16 MiB packets in memory first). */
export async function streamRows(
  conn: CoreConnection,
  sql: string,
  backstopMs: number,
  wireLimit: number,
  collector: RowCollector,
  interrupt: () => Promise<void>,
): Promise<StreamOutcome> {
  let interruption: Promise<boolean> | undefined;
  let ended = false;
  let fields: FieldPacket[] = [];
  let stopWatching = () => {};
  let onConnectionError = (_err: Error) => {};
  try {
    ended = await new Promise<boolean>((resolve, reject) => {
      let convert: ReturnType<typeof valueConverters> = [];
      let wanted = true;
      let dropped = 0;
      let drainTimer: NodeJS.Timeout | undefined;
      let giveUpTimer: NodeJS.Timeout | undefined;
      const finish = (value: boolean) => {
        clearTimeout(drainTimer);
        clearTimeout(giveUpTimer);
        resolve(value);
      };
      const overrun = () => {
        if (interruption) return;
        clearTimeout(drainTimer);
        // Stop reading while the KILL is sent: parsing a flood of rows we drop would starve the
        // event loop that has to connect and send it. Reading resumes so the server, which
        // checks for KILL between writes, can get to the check.
        conn.pause();
        interruption = interrupt().then(
          () => true,
          () => false,
        );
        void interruption.finally(() => conn.resume());
        void interruption.then((delivered) => delivered || finish(false));
        giveUpTimer = setTimeout(() => finish(false), INTERRUPT_WAIT_MS);
      };
      // mysql2 tells a lost connection (KILL, a network cut) to the connection only, not to a
      // query run without a callback: without this the statement would wait for the backstop.
      onConnectionError = (err) => {
        clearTimeout(drainTimer);
        clearTimeout(giveUpTimer);
        reject(err);
      };
      conn.on("error", onConnectionError);
      stopWatching = watchReceivedBytes(streamOf(conn), wireLimit, (received) => {
        collector.cutOff(received);
        finish(false);
        streamOf(conn).destroy();
      });
      const q = conn.query({ sql, rowsAsArray: true, timeout: backstopMs });
      q.on("fields", (packet: FieldPacket[] | undefined, index: number) => {
        if (index > 0 || !packet) return; // only the first result set counts (CALL may return more)
        fields = packet;
        convert = valueConverters(packet);
      });
      q.on("result", (row: unknown, index: number) => {
        if (index > 0 || !Array.isArray(row)) return; // OK packets of statements without rows
        if (!wanted) {
          if (++dropped > DRAIN_ROWS) overrun();
          return;
        }
        if (!collector.push(row.map((value: unknown, i) => (convert[i] ? convert[i](value) : value)))) {
          wanted = false;
          drainTimer = setTimeout(overrun, DRAIN_MS);
        }
      });
      q.on("end", () => finish(true));
      q.on("error", (err: Error & { errno?: number }) => {
        if (interruption && err.errno === ER_QUERY_INTERRUPTED) finish(true);
        else {
          clearTimeout(drainTimer);
          clearTimeout(giveUpTimer);
          reject(err);
        }
      });
    });
  } finally {
    stopWatching();
    conn.removeListener("error", onConnectionError);
    // A KILL still on its way would hit the connection's next statement: wait for it, a
    // while; one that does not arrive by then (a network gone silent) leaves the connection
    // to be dropped, and the kill's own timeout ends it.
    if (interruption && !(await Promise.race([interruption, delay(INTERRUPT_WAIT_MS, false)]))) ended = false;
  }
  return { fields, complete: ended };
}

/** The connection's socket (plain or TLS; not in mysql2's typings). */
export function streamOf(conn: CoreConnection): Socket {
  return (conn as unknown as { stream: Socket }).stream;
}
