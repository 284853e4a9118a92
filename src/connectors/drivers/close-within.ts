// A connection Pulse ends says goodbye (pg's Terminate, mysql2's COM_QUIT, a FIN) and waits for
// the server to close: a server that never does (hostile, or a broken proxy in the way) kept the
// socket, half-closed or open, for good: one file descriptor per connection, as often as a user
// can make Pulse open and end one. So every socket a driver ends is destroyed if it has not
// closed after a short grace, which a server that answers takes a few milliseconds of.

/** How long a server has to close a connection Pulse ended. */
export const CLOSE_GRACE_MS = 1_000;

interface Closable {
  readonly destroyed: boolean;
  destroy(): void;
  once(event: "close", listener: () => void): unknown;
}

/** Destroys `socket` unless it has closed within `ms`. */
export function closeWithin(socket: Closable, ms = CLOSE_GRACE_MS): void {
  if (socket.destroyed) return;
  // Unreferenced: a socket left to close does not keep the process alive (its own handle may).
  const timer = setTimeout(() => socket.destroy(), ms).unref();
  socket.once("close", () => clearTimeout(timer));
}
