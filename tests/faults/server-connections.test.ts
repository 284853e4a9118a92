// Customer PostgreSQL and MariaDB connections that fail under a running statement: killed by
// the server, cut or silenced on the network (through a relay the test controls), or flooded
// with a value larger than the byte cap. Pulse answers a clean error, keeps running, and the
// same saved connection serves the next query. Same cases for both dialects.

import mysql from "mysql2/promise";
import v8 from "node:v8";
import vm from "node:vm";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";

import { createHarness, type ApiResponse, type Harness } from "../support/harness.js";
import { createMariaDatabase, createPgDatabase, mariaAdmin, MARIADB, PG, uniqueName } from "../support/services.js";
import { startTcpRelay, type TcpRelay } from "../support/tcp-relay.js";

/** Small on purpose: a value of a few MiB is already "huge", so the cases stay cheap. */
const MAX_BYTES = 1024 * 1024;

/** What a case needs from one dialect. */
interface DialectKit {
  /** add_db_connection body reaching the server through `port`. */
  body(port: number): Record<string, unknown>;
  serverPort: number;
  /** Holds a lock that makes `SELECT ... FROM items` wait until released. */
  holdLock(): Promise<() => Promise<void>>;
  /** The server's id of the session running a statement that contains `marker`, once it runs. */
  runningSession(marker: string): Promise<number | undefined>;
  /** Ends that session from the server side. */
  kill(session: number): Promise<void>;
  /** One row far larger than MAX_BYTES (100 MB or more on the wire), marked with `marker`. */
  hugeRowSql(marker: string): string;
  /** Creates table `blobs` with a few stored rows of 40 to 60 MB on the wire each. */
  storeHugeRows(): Promise<void>;
  /** Many rows of 100 kB: a result far past the cap, each row small. */
  manyRowsSql: string;
  /** A read that keeps the server busy far past any test, and writes nothing until it ends. */
  busySql(marker: string): string;
  drop(): Promise<void>;
}

async function postgresKit(): Promise<DialectKit> {
  const db = await createPgDatabase("pulse_fault");
  await db.query("CREATE TABLE items (id int primary key, name text)");
  await db.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  return {
    serverPort: PG.port,
    body: (port) => ({ db_type: "postgresql", host: PG.host, port, database_name: db.name, username: PG.user, db_password: "fault-secret-pg" }),
    async holdLock() {
      const admin = new pg.Client({ ...PG, database: db.name });
      await admin.connect();
      await admin.query("BEGIN");
      await admin.query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
      return async () => {
        await admin.query("ROLLBACK");
        await admin.end();
      };
    },
    async runningSession(marker) {
      const rows = await db.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pulse' AND state = 'active' AND query LIKE $2",
        [db.name, `%${marker}%`],
      );
      return rows[0]?.pid;
    },
    async kill(pid) {
      await db.query("SELECT pg_terminate_backend($1) WHERE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND datname = $2)", [pid, db.name]);
    },
    // 100x the cap. At 540,000,000 the same row also ends a client that buffers it (the value
    // is past V8's longest string); that size costs the shared server 15 s of work, this one 3.
    hugeRowSql: (marker) => `SELECT repeat('x', 100000000) AS v, '${marker}' AS marker`,
    async storeHugeRows() {
      // 20 MB of bytea, sent as 40 MB of hex (TOAST compresses it to almost nothing on disk).
      await db.query("CREATE TABLE blobs (id int, b bytea)");
      await db.query("INSERT INTO blobs SELECT g, decode(repeat('78', 20000000), 'hex') FROM generate_series(1, 3) g");
    },
    manyRowsSql: "SELECT repeat('x', 100000) AS v FROM generate_series(1, 1000)",
    // Each side small, as a function scan is stored whole before the join reads it.
    busySql: (marker) => `SELECT count(*) AS n, '${marker}' AS marker FROM generate_series(1, 100000) a, generate_series(1, 100000) b`,
    drop: () => db.drop(),
  };
}

async function mariaKit(): Promise<DialectKit> {
  const db = await createMariaDatabase("pulse_fault");
  const user = uniqueName("pulse_f").slice(0, 60);
  const password = "fault-secret-maria";
  for (const host of ["%", "localhost"]) {
    await mariaAdmin(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
    await mariaAdmin(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'${host}'`);
  }
  await db.query("CREATE TABLE items (id int primary key, name text)");
  await db.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  return {
    serverPort: MARIADB.port,
    body: (port) => ({ db_type: "mysql", host: MARIADB.host, port, database_name: db.name, username: user, db_password: password }),
    async holdLock() {
      const admin = await mysql.createConnection({ ...MARIADB, database: db.name });
      await admin.query("LOCK TABLES items WRITE");
      return async () => {
        await admin.query("UNLOCK TABLES");
        await admin.end();
      };
    },
    async runningSession(marker) {
      const rows = await mariaAdmin<{ ID: number }>(
        `SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '${db.name}' AND USER = '${user}' AND INFO LIKE '%${marker}%'`,
      );
      return rows[0]?.ID;
    },
    async kill(id) {
      // Only a session of this test's own user and database (checked by runningSession).
      await mariaAdmin(`KILL ${Number(id)}`);
    },
    // max_allowed_packet (16 MiB here) bounds each value, not the row: eight 15 MB columns make a
    // 120 MB row, which the server sends as 16 MiB packets that mysql2 joins in memory. (Binary,
    // because a text value is judged at 4 bytes a character; RPAD, because the guard's MySQL
    // parser reads REPEAT as the loop statement.)
    hugeRowSql: (marker) =>
      `SELECT ${Array.from({ length: 8 }, (_, i) => `RPAD(x'', 15000000, x'78') AS v${i}`).join(", ")}, '${marker}' AS marker`,
    async storeHugeRows() {
      // Each LONGBLOB value stays under max_allowed_packet; four make a 60 MB row.
      const value = "RPAD(x'', 15000000, x'78')";
      await db.query("CREATE TABLE blobs (id int, b1 LONGBLOB, b2 LONGBLOB, b3 LONGBLOB, b4 LONGBLOB)");
      await db.query(`INSERT INTO blobs SELECT seq, ${value}, ${value}, ${value}, ${value} FROM seq_1_to_2`);
    },
    manyRowsSql: "SELECT RPAD('', 100000, 'x') AS v FROM seq_1_to_1000",
    busySql: (marker) => `SELECT sum(a.seq % 7) AS n, '${marker}' AS marker FROM seq_1_to_1000000000 a, seq_1_to_1000 b`,
    async drop() {
      for (const host of ["%", "localhost"]) await mariaAdmin(`DROP USER IF EXISTS '${user}'@'${host}'`);
      await db.drop();
    },
  };
}

let h: Harness;
const uncaught = vi.fn();

beforeAll(async () => {
  process.on("uncaughtException", uncaught);
  process.on("unhandledRejection", uncaught);
  h = await createHarness({ env: { QUERY_MAX_BYTES: String(MAX_BYTES), QUERY_TIMEOUT_MS: "20000" } });
});
afterAll(async () => {
  await h?.close();
  process.off("uncaughtException", uncaught);
  process.off("unhandledRejection", uncaught);
});
afterEach(() => {
  // Nothing a broken connection did escaped as an uncaught error. (In Pulse such an error ends
  // the process; with this listener installed the test worker survives it and the spy tells.)
  try {
    expect(uncaught).not.toHaveBeenCalled();
  } finally {
    uncaught.mockClear();
  }
});

v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([
  ["PostgreSQL", postgresKit],
  ["MariaDB", mariaKit],
] as const)("%s connections under faults", (_name, makeKit) => {
  let kit: DialectKit;
  let relay: TcpRelay;
  let token: string;

  beforeAll(async () => {
    kit = await makeKit();
    relay = await startTcpRelay({ host: "127.0.0.1", port: kit.serverPort });
    token = (await h.newUser()).token;
  });
  afterAll(async () => {
    await relay?.close();
    await kit?.drop();
  });

  /** A saved connection reaching the server directly, or through the relay. */
  async function connection(via: "direct" | "relay"): Promise<number> {
    const res = await h.call("POST", "/databases/add_db_connection", { token, json: kit.body(via === "relay" ? relay.port : kit.serverPort) });
    expect(res.status, res.text).toBe(201);
    return res.body.db_connection.id as number;
  }

  const query = (id: number, sql: string, timeoutMs = 15_000) =>
    h.call("POST", `/databases/${id}/query`, { token, json: { sql, timeout_ms: timeoutMs } });

  /** Starts a statement that waits on a lock, runs `fault` once the server runs it, and
   * answers the statement's response. */
  async function faultMidQuery(id: number, fault: (session: number) => Promise<void> | void): Promise<ApiResponse> {
    const marker = uniqueName("fault");
    const release = await kit.holdLock();
    try {
      const pending = query(id, `SELECT id, '${marker}' AS marker FROM items`);
      let session: number | undefined;
      for (let i = 0; i < 200 && session === undefined; i++) {
        session = await kit.runningSession(marker);
        if (session === undefined) await sleep(25);
      }
      expect(session, "the statement never started").toBeDefined();
      await fault(session!);
      return await pending;
    } finally {
      await release();
    }
  }

  /** Waits (5 s at most) for the statement carrying `marker` to run on the server. */
  async function untilRunning(marker: string) {
    for (let i = 0; i < 200 && (await kit.runningSession(marker)) === undefined; i++) await sleep(25);
  }

  /** The server session still running the statement carrying `marker` after 4 s, or undefined
   * once it ended before (15 s from its timeout: still running means left to the timeout). */
  async function runningAfterCut(marker: string): Promise<number | undefined> {
    let running: number | undefined = 0;
    for (let i = 0; i < 40 && running !== undefined; i++) {
      await sleep(100);
      running = await kit.runningSession(marker);
    }
    return running;
  }

  async function expectNextQueryWorks(id: number) {
    const next = await query(id, "SELECT id FROM items ORDER BY id");
    expect(next.status, next.text).toBe(200);
    expect(next.body.data.rows).toEqual([[1], [2]]);
  }

  function expectCleanError(res: ApiResponse, status: number, code: string) {
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get("content-type")).toMatch(/json/);
    expect(res.body).toMatchObject({ status: "error", code });
    expect(res.text).not.toMatch(/fault-secret/);
  }

  it("answers 502 connection_lost when the server ends the statement's session, then reconnects", async () => {
    const id = await connection("direct");
    const res = await faultMidQuery(id, (session) => kit.kill(session));
    expectCleanError(res, 502, "connection_lost");
    expect(res.body.detail).toContain(`127.0.0.1:${kit.serverPort}`);
    await expectNextQueryWorks(id);
  });

  it("answers 502 connection_lost when the network is cut mid-query, then reconnects", async () => {
    const id = await connection("relay");
    const res = await faultMidQuery(id, () => relay.cut());
    expectCleanError(res, 502, "connection_lost");
    expect(res.body.detail).toContain(`127.0.0.1:${relay.port}`);
    await expectNextQueryWorks(id);
  });

  it("ends the statement on the server once its connection is cut, rather than at its timeout", async () => {
    const id = await connection("relay");
    const marker = uniqueName("orphan");
    const release = await kit.holdLock();
    try {
      const pending = query(id, `SELECT id, '${marker}' AS marker FROM items`);
      await untilRunning(marker);
      expect(await kit.runningSession(marker), "the statement never started").toBeDefined();
      relay.cut();
      expectCleanError(await pending, 502, "connection_lost");
      // Still waiting on the lock: the server ends it because Pulse is gone.
      const running = await runningAfterCut(marker);
      expect(running, "the statement still runs on the server").toBeUndefined();
    } finally {
      await release();
    }
    await expectNextQueryWorks(id);
  });

  // A busy statement, unlike one waiting on a lock, is not looked after by MariaDB while it
  // runs: it would find the connection gone at its first write, at its timeout. Meanwhile Pulse
  // had answered and given its place in the connection budget to the next statement, so cut
  // after cut the database ran many more than CONNECTION_MAX_CONCURRENCY (seen: 60 for 4).
  it("ends a busy statement on the server once its connection is cut, rather than at its timeout", async () => {
    const id = await connection("relay");
    const marker = uniqueName("busy");
    const pending = query(id, kit.busySql(marker));
    await untilRunning(marker);
    expect(await kit.runningSession(marker), "the statement never started").toBeDefined();
    relay.cut();
    expectCleanError(await pending, 502, "connection_lost");
    const running = await runningAfterCut(marker);
    if (running !== undefined) await kit.kill(running);
    expect(running, "the statement still runs on the server").toBeUndefined();
    await expectNextQueryWorks(id);
  });

  it("answers 408 within the backstop when the network goes silent mid-query, then reconnects", async () => {
    const id = await connection("relay");
    const startedAt = Date.now();
    const marker = uniqueName("silent");
    const release = await kit.holdLock();
    let res: ApiResponse;
    try {
      const pending = query(id, `SELECT id, '${marker}' AS marker FROM items`, 1_000);
      await untilRunning(marker);
      relay.freeze();
      res = await pending;
    } finally {
      await release();
    }
    expectCleanError(res, 408, "query_timeout");
    // 1 s statement timeout + the 2 s backstop, with room for a busy machine.
    expect(Date.now() - startedAt).toBeLessThan(15_000);
    await expectNextQueryWorks(id);
  });

  /** The response, how far this process's buffers grew at most while it was made, and how many
   * bytes the server got to send (the connection `id` goes through the relay). */
  async function queryMeasuringBuffers(id: number, sql: string): Promise<{ res: ApiResponse; growth: number; received: number }> {
    const relayedBefore = relay.bytesFromServer;
    collectGarbage(); // a baseline still holding an earlier test's buffers would hide growth
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }, 2);
    try {
      const res = await query(id, sql);
      return { res, growth: peak - before, received: relay.bytesFromServer - relayedBefore };
    } finally {
      clearInterval(sampler);
    }
  }

  /** A row of 40 MB or more is buffered whole without the wire limit (seen: 84 to 234 MB of
   * buffers, when the sampling catches it); with it, what arrives before the cut is the 4 MiB
   * limit and the driver's and the relay's buffers (seen: 8 to 19 MB). */
  const BUFFER_GROWTH_BOUND = 48 * 1024 * 1024;
  /** The steadier measure: the bytes relayed are the 4 MiB limit plus the sockets' buffers
   * (seen: 4 to 6 MB), against the whole row without the limit. */
  const RECEIVED_BOUND = 24 * 1024 * 1024;

  it("refuses a row far over the byte cap with 413 before buffering it, and stops the statement", async () => {
    const id = await connection("relay");
    const marker = uniqueName("huge");
    const { res, growth, received } = await queryMeasuringBuffers(id, kit.hugeRowSql(marker));
    expectCleanError(res, 413, "result_too_large");
    expect(growth).toBeLessThan(BUFFER_GROWTH_BOUND);
    expect(received).toBeLessThan(RECEIVED_BOUND);
    // The cut connection ended the statement on the server too (at its next write).
    let running = await kit.runningSession(marker);
    for (let i = 0; i < 100 && running !== undefined; i++) {
      await sleep(50);
      running = await kit.runningSession(marker);
    }
    expect(running).toBeUndefined();
    await expectNextQueryWorks(id);
  });

  it("refuses stored rows far over the byte cap with 413 before buffering them", async () => {
    await kit.storeHugeRows();
    const id = await connection("relay");
    const { res, growth, received } = await queryMeasuringBuffers(id, "SELECT * FROM blobs ORDER BY id");
    expectCleanError(res, 413, "result_too_large");
    expect(growth).toBeLessThan(BUFFER_GROWTH_BOUND);
    expect(received).toBeLessThan(RECEIVED_BOUND);
    await expectNextQueryWorks(id);
  });

  it("keeps the rows that fit when many rows overflow the byte cap", async () => {
    const id = await connection("direct");
    const res = await query(id, kit.manyRowsSql);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.truncated).toBe(true);
    expect(res.body.data.row_count).toBeGreaterThan(0);
    expect(res.body.data.row_count).toBeLessThan(11); // 100 kB rows in a 1 MiB answer
    await expectNextQueryWorks(id);
  });
});
