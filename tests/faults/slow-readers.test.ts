// A client that asks for a large answer and stops reading it: Node keeps what the socket cannot
// take yet, so without a bound the answer stays in Pulse's memory for as long as the client
// keeps the socket open (measured: 52 MB per socket for a schema, 11 MB for a query, held until
// the client closed). The socket is dropped after HTTP_SEND_TIMEOUT_MS without progress; a
// client that reads, however large the answer, gets all of it; and all that waits for clients
// stays under HTTP_UNSENT_MAX_BYTES. Real server, raw sockets.

import net from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { PG } from "../support/services.js";

/** About 24 MB of JSON: far more than the socket buffers of a loopback connection hold. */
const LARGE_SQL = "SELECT repeat('x', 1000000) AS v FROM generate_series(1, 24)";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Served {
  h: Harness;
  target: MonitoredDb;
  port: number;
  token: string;
  connectionId: number;
}

/** A harness served as the service serves it, with a user and a connection. */
async function served(env: Record<string, string>): Promise<Served> {
  const h = await createHarness({ env: { QUERY_MAX_BYTES: String(64 * 1024 * 1024), ...env } });
  const target = await pgMonitoredDb();
  const { port } = await h.serve();
  const token = (await h.newUser()).token;
  return { h, target, port, token, connectionId: await addConnection(h, token, target.body) };
}

async function close(s: Served | undefined): Promise<void> {
  await s?.h.close();
  await s?.target.drop();
}

/** Sends the large query on a raw socket and reads nothing until `finish`, which reads to the
 * end: the bytes that arrived, and whether the response was whole. */
function rawQuery(s: Served): { finish: () => Promise<{ bytes: number; whole: boolean }> } {
  const body = JSON.stringify({ sql: LARGE_SQL });
  const socket = net.connect(s.port, "127.0.0.1");
  socket.pause();
  socket.write(
    `POST /databases/${s.connectionId}/query HTTP/1.1\r\nHost: pulse\r\nAuthorization: Bearer ${s.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve) => {
    socket.on("close", () => resolve());
    socket.on("error", () => resolve());
  });
  return {
    async finish() {
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.resume();
      await closed;
      const text = Buffer.concat(chunks).toString("latin1");
      return { bytes: text.length, whole: text.startsWith("HTTP/1.1 200") && text.trimEnd().endsWith("}") };
    },
  };
}

describe("a client that stops reading a large answer", () => {
  let s: Served;
  let h: Harness;
  let target: MonitoredDb;
  let port: number;
  let token: string;
  let connectionId: number;
  beforeAll(async () => {
    s = await served({ HTTP_SEND_TIMEOUT_MS: "1000" });
    ({ h, target, port, token, connectionId } = s);
  });
  afterAll(() => close(s));

  /** The large query on a raw socket, read after `pauseMs`. */
  async function queryOnRawSocket(pauseMs: number): Promise<{ bytes: number; whole: boolean }> {
    const query = rawQuery(s);
    await sleep(pauseMs);
    return query.finish();
  }

  it("drops the socket after HTTP_SEND_TIMEOUT_MS without progress, freeing the answer", async () => {
    const { bytes, whole } = await queryOnRawSocket(6_000);
    expect(whole).toBe(false);
    expect(bytes).toBeLessThan(24_000_000);
    // Pulse goes on answering.
    expect((await h.call("GET", "/health")).status).toBe(200);
  });

  /** Holds a lock on `events` for `ms`: a statement reading it waits that long on the database. */
  async function lockEventsFor(ms: number): Promise<void> {
    const admin = new pg.Client({ ...PG, database: String(target.body.database_name) });
    await admin.connect();
    await admin.query("BEGIN");
    await admin.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    setTimeout(() => void admin.query("ROLLBACK").finally(() => admin.end()), ms);
  }

  const WAITING_SQL = "SELECT count(*) AS n FROM events";

  it("leaves a kept-alive connection's next request all the time it takes", async () => {
    const query = (sql: string) =>
      fetch(`http://127.0.0.1:${port}/databases/${connectionId}/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql }),
      });
    expect((await query("SELECT 1 AS one")).status).toBe(200);
    // On the same connection (fetch keeps it alive): three times the send timeout before any answer.
    await lockEventsFor(3_000);
    const slow = await query(WAITING_SQL);
    expect(slow.status).toBe(200);
    expect(((await slow.json()) as { data: { rows: unknown[][] } }).data.rows).toEqual([[0]]);
  });

  it("leaves a pipelined request all the time it takes", async () => {
    await lockEventsFor(3_000);
    const request = (sql: string) => {
      const body = JSON.stringify({ sql });
      return `POST /databases/${connectionId}/query HTTP/1.1\r\nHost: pulse\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    };
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
    // Both at once: the second is parsed while the first is answered.
    socket.write(request("SELECT 1 AS one") + request(WAITING_SQL));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    for (let i = 0; i < 100 && (text.match(/HTTP\/1\.1 200/g) ?? []).length < 2; i++) await sleep(100);
    socket.destroy();
    await closed;
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(text).toContain('"rows":[[0]]');
  });

  it("sends all of it to a client that reads, however large", async () => {
    const { bytes, whole } = await queryOnRawSocket(0);
    expect(whole).toBe(true);
    expect(bytes).toBeGreaterThan(24_000_000);
  });
});

describe("many answers left unread at once", () => {
  let s: Served;
  // Room for one ~24 MB answer, not two; a send timeout far longer than the test.
  beforeAll(async () => (s = await served({ HTTP_SEND_TIMEOUT_MS: "600000", HTTP_UNSENT_MAX_BYTES: String(40 * 1024 * 1024) })));
  afterAll(() => close(s));

  it("keeps what waits for clients under HTTP_UNSENT_MAX_BYTES: the answer its client is not reading is dropped, the one being read is sent whole", async () => {
    const unread = rawQuery(s);
    // Long enough for its pace to be known: nothing read in a second and more.
    await sleep(2_500);
    const next = rawQuery(s);
    await sleep(2_500);
    const [first, second] = await Promise.all([unread.finish(), next.finish()]);
    expect(first.whole).toBe(false);
    expect(first.bytes).toBeLessThan(24_000_000);
    expect(second.whole).toBe(true);
    expect(s.h.logs.join("")).toContain("HTTP_UNSENT_MAX_BYTES reached: a response its client is not reading dropped");
  });
});
