// A client that asks for a large answer and stops reading it: Node keeps what the socket cannot
// take yet, so without a bound the answer stays in Pulse's memory for as long as the client
// keeps the socket open (measured: 52 MB per socket for a schema, 11 MB for a query, held until
// the client closed). The socket is dropped after HTTP_SEND_TIMEOUT_MS without progress; a
// client that reads, however large the answer, gets all of it. Real server, raw sockets.

import type { ServerType } from "@hono/node-server";
import net, { type AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { serveApp } from "../../src/http/unread-responses.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { PG } from "../support/services.js";

/** About 24 MB of JSON: far more than the socket buffers of a loopback connection hold. */
const LARGE_SQL = "SELECT repeat('x', 1000000) AS v FROM generate_series(1, 24)";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("a client that stops reading a large answer", () => {
  let h: Harness;
  let target: MonitoredDb;
  let server: ServerType;
  let port: number;
  let token: string;
  let connectionId: number;
  beforeAll(async () => {
    h = await createHarness({ env: { HTTP_SEND_TIMEOUT_MS: "1000", QUERY_MAX_BYTES: String(64 * 1024 * 1024) } });
    target = await pgMonitoredDb();
    // As the service serves it (src/lifecycle.ts).
    server = await new Promise<ServerType>((resolve) => {
      const s = serveApp(h.app.fetch, { port: 0, hostname: "127.0.0.1", sendTimeoutMs: h.deps.config.sendTimeoutMs }, () => resolve(s));
    });
    port = (server.address() as AddressInfo).port;
    const user = await h.newUser();
    token = user.token;
    connectionId = await addConnection(h, token, target.body);
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await h?.close();
    await target?.drop();
  });

  /** Sends the query on a raw socket, reads nothing for `pauseMs`, then reads to the end: the
   * bytes that arrived, and whether the response was whole. */
  async function queryOnRawSocket(pauseMs: number): Promise<{ bytes: number; whole: boolean }> {
    const body = JSON.stringify({ sql: LARGE_SQL });
    const socket = net.connect(port, "127.0.0.1");
    socket.pause();
    socket.write(
      `POST /databases/${connectionId}/query HTTP/1.1\r\nHost: pulse\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    await sleep(pauseMs);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await new Promise<void>((resolve) => {
      socket.on("close", () => resolve());
      socket.on("error", () => resolve());
    });
    const text = Buffer.concat(chunks).toString("latin1");
    return { bytes: text.length, whole: text.startsWith("HTTP/1.1 200") && text.trimEnd().endsWith("}") };
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
