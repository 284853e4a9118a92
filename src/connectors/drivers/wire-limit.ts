// Bounds the bytes one statement may make a database client receive. The row collector caps
// what Pulse keeps, but only once a whole row has arrived: the drivers buffer each protocol
// message (a PostgreSQL DataRow, a MySQL row split over 16 MiB packets) in full first, so one
// huge value could take all memory, or exceed V8's string limit inside a socket handler and
// end the process. Watching the socket itself stops such a row before it is buffered.

import { DomainError } from "../../errors.js";

/** Protocol bytes per byte of JSON, at worst: a narrow row costs more on the wire than in the
 * answer (`SELECT 1` is a 12-byte DataRow for a 5-byte `[1],`; bytea's hex is 1.5 times its
 * base64), so a result within the byte cap may be this much larger in transit. */
const WIRE_BYTES_PER_JSON_BYTE = 3;
/** Room for what is not rows: column descriptions, the row that tells truncation, and the
 * socket chunk (up to 64 KiB) that crosses the limit. */
const WIRE_SLACK_BYTES = 1024 * 1024;
/** Never more, whatever the cap: below V8's longest string (2^29 - 24 characters), so no
 * single value can reach the length at which turning it into a string throws. */
const WIRE_CEILING_BYTES = 500 * 1024 * 1024;

/** The most a statement with this result cap may receive before its connection is cut. */
export function wireLimitOf(maxBytes: number): number {
  return Math.min(maxBytes * WIRE_BYTES_PER_JSON_BYTE + WIRE_SLACK_BYTES, WIRE_CEILING_BYTES);
}

/** The most a driver's own statements (the probe, the catalog, the identity check) may
 * receive: a large catalog is a few MiB; past this, a huge comment or a hostile server. */
export const OWN_WIRE_LIMIT_BYTES = 256 * 1024 * 1024;

/** The part of a socket (plain or TLS) watched here. */
interface Readable {
  prependListener(event: "data", listener: (chunk: Buffer) => void): unknown;
  removeListener(event: "data", listener: (chunk: Buffer) => void): unknown;
}

export type WatchedStream = Readable & { destroy(): void };

/** Runs one of a driver's own statements with its connection's socket watched, as a user's
 * statement is: an answer past OWN_WIRE_LIMIT_BYTES destroys the socket and fails the
 * statement as connection_failed, where buffering it could end the process. */
export async function withinOwnWireLimit<T>(stream: WatchedStream, run: () => Promise<T>): Promise<T> {
  let exceeded = false;
  const stopWatching = watchReceivedBytes(stream, OWN_WIRE_LIMIT_BYTES, () => {
    exceeded = true;
    stream.destroy();
  });
  try {
    return await run();
  } catch (err) {
    if (!exceeded) throw err;
    throw new DomainError("connection_failed", `The database answered one of Pulse's own catalog statements with more than ${OWN_WIRE_LIMIT_BYTES / 1024 / 1024} MiB; the connection was closed`);
  } finally {
    stopWatching();
  }
}

/** Counts what `socket` receives from now on and calls `onExceeded` once, as soon as it is
 * over `limit`. The listener runs before the driver's own, so the driver never holds more
 * than the limit plus one chunk, provided `onExceeded` destroys the socket. Call the returned
 * function when the statement ends. */
export function watchReceivedBytes(socket: Readable, limit: number, onExceeded: (received: number) => void): () => void {
  let received = 0;
  let exceeded = false;
  const count = (chunk: Buffer) => {
    received += chunk.length;
    if (!exceeded && received > limit) {
      exceeded = true;
      onExceeded(received);
    }
  };
  socket.prependListener("data", count);
  return () => {
    socket.removeListener("data", count);
  };
}
