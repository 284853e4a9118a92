// A "PostgreSQL server" that speaks just enough of the protocol to be connected to (trust
// authentication, no TLS) and then misbehaves in one chosen way, for the fault tests of the
// PostgreSQL driver: what a hostile or broken server sends must fail one request, never end
// the process.

import { createServer, type Server, type Socket } from "node:net";

export type HostileMode =
  /** Every simple query (the probe, the catalog, the identity check) answered with one text
   * value of `hugeBytes`, streamed. */
  | "huge-answer"
  /** Simple queries answered with no row. */
  | "no-rows"
  /** Simple queries answered as a PostgreSQL 16 primary would the probe; a user's statement
   * answered with a row of two values for one described column. */
  | "bad-row"
  /** Simple queries refused with an error (a SQLSTATE, as a server's own refusal), and the
   * connection never closed from its side: Terminate, and the client's end of the TCP
   * connection, are read and ignored. */
  | "refuse-and-linger";

const message = (type: string, body: Buffer = Buffer.alloc(0)) => {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0);
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
};
const int32 = (n: number) => Buffer.from([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const int16 = (n: number) => Buffer.from([(n >> 8) & 255, n & 255]);
const cstr = (s: string) => Buffer.from(`${s}\0`);
const describeRow = (fields: [string, number][]) =>
  message("T", Buffer.concat([int16(fields.length), ...fields.map(([name, oid]) => Buffer.concat([cstr(name), int32(0), int16(0), int32(oid), int16(-1), int32(-1), int16(0)]))]));
const dataRow = (values: (string | null)[]) =>
  message("D", Buffer.concat([int16(values.length), ...values.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)])))]));
const READY = message("Z", Buffer.from("I"));
const TEXT = 25;
const BOOL = 16;

export interface HostilePostgres {
  port: number;
  close(): Promise<void>;
}

export async function startHostilePostgres(mode: HostileMode, hugeBytes = 300 * 1024 * 1024): Promise<HostilePostgres> {
  const sockets = new Set<Socket>();
  // Lingering, it answers the client's FIN with none of its own (as a peer gone silent would).
  const server: Server = createServer({ allowHalfOpen: mode === "refuse-and-linger" }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8 || buffer.length < buffer.readInt32BE(0)) return;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(buffer.readInt32BE(0));
          if (code === 80877103) {
            socket.write("N"); // no TLS
            continue;
          }
          started = true;
          socket.write(Buffer.concat([message("R", int32(0)), message("K", Buffer.concat([int32(1), int32(2)])), READY]));
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        const type = String.fromCharCode(buffer[0]!);
        buffer = buffer.subarray(1 + buffer.readInt32BE(1));
        if (type === "Q") answerSimple(socket);
        else if (type === "S") answerPipeline(socket);
        else if (type === "X" && mode !== "refuse-and-linger") socket.end();
      }
    });
  });

  function answerSimple(socket: Socket): void {
    if (mode === "refuse-and-linger") {
      const fields = Buffer.concat([cstr("SERROR"), cstr("C42883"), cstr("Mnot here"), Buffer.from([0])]);
      socket.write(Buffer.concat([message("E", fields), READY]));
    } else if (mode === "no-rows") {
      socket.write(Buffer.concat([describeRow([["server_version", TEXT]]), message("C", cstr("SELECT 0")), READY]));
    } else if (mode === "huge-answer") {
      // One DataRow announced whole, then streamed a MiB at a time until the client goes.
      const header = Buffer.concat([describeRow([["comment", TEXT]]), Buffer.from("D"), int32(4 + 2 + 4 + hugeBytes), int16(1), int32(hugeBytes)]);
      socket.write(header);
      const chunk = Buffer.alloc(1024 * 1024, 120);
      let sent = 0;
      const pump = () => {
        while (sent < hugeBytes && !socket.destroyed) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      pump();
    } else {
      socket.write(Buffer.concat([
        describeRow([["server_version", TEXT], ["replica", BOOL], ["can_write", BOOL], ["lag_seconds", TEXT]]),
        dataRow(["16.0", "f", "t", null]),
        message("C", cstr("SELECT 1")),
        READY,
      ]));
    }
  }

  function answerPipeline(socket: Socket): void {
    // BEGIN, the statement (one column described, two values sent), ROLLBACK and the session's
    // cleanup: ParseComplete and BindComplete before each.
    socket.write(Buffer.concat([
      message("1"), message("2"), message("C", cstr("BEGIN")),
      message("1"), message("2"), describeRow([["a", TEXT]]), dataRow(["x", "y"]), message("C", cstr("SELECT 1")),
      message("1"), message("2"), message("C", cstr("ROLLBACK")),
      message("1"), message("2"), dataRow([""]), message("C", cstr("SELECT 1")),
      message("1"), message("2"), message("C", cstr("DEALLOCATE ALL")),
      READY,
    ]));
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
