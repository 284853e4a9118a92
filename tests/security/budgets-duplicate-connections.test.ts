// Threat: a user multiplies their share of a database by saving it several times (under other
// spellings of its host, or with a second account). Connection budgets are the target
// database's, whichever saved connections reach it; and each user has a budget of their own
// across all their connections.
// Statements are held on the database by a table lock an administrator takes, so what runs at
// once is counted on the database itself (pg_stat_activity, PROCESSLIST), without load.

import { symlinkSync } from "node:fs";
import path from "node:path";
import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type ApiResponse, type Harness } from "../support/harness.js";
import { MARIADB, mariaAdmin, PG, pgAdmin } from "../support/services.js";
import { mariaTarget, postgresTarget, sqliteTarget, type TargetDb } from "../support/targets.js";

/** Statements one database may run at once, across every saved connection to it. */
const DATABASE_LIMIT = 2;
/** Four spellings of this machine's address: each saved connection looks like another server. */
const HOSTS = ["127.0.0.1", "localhost", "127.1", "::ffff:127.0.0.1"];
const SELECT = "SELECT count(*) AS n FROM items";

interface Server {
  target(): Promise<TargetDb>;
  /** Locks `items` until release(): statements reading it wait, running, on the database. */
  lock(db: TargetDb): Promise<{ release(): Promise<void> }>;
  /** Pulse's statements waiting on that lock right now. */
  blocked(db: TargetDb): Promise<number>;
}

const servers: Record<"postgresql" | "mysql", Server> = {
  postgresql: {
    target: postgresTarget,
    async lock(db) {
      const client = new pg.Client({ ...PG, database: db.body.database_name as string });
      await client.connect();
      await client.query("BEGIN");
      await client.query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
      return { release: async () => void (await client.query("COMMIT"), await client.end()) };
    },
    async blocked(db) {
      const [row] = await pgAdmin<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pulse' AND wait_event_type = 'Lock'",
        PG.database,
        [db.body.database_name],
      );
      return Number(row!.n);
    },
  },
  mysql: {
    target: mariaTarget,
    async lock(db) {
      const conn = await mysql.createConnection({ ...MARIADB, database: db.body.database_name as string });
      await conn.query("LOCK TABLES items WRITE");
      return { release: async () => void (await conn.query("UNLOCK TABLES"), await conn.end()) };
    },
    async blocked(db) {
      const [row] = await mariaAdmin<{ n: number }>(
        `SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${db.body.username as string}' AND STATE LIKE 'Waiting for table%'`,
      );
      return Number(row!.n);
    },
  },
};

async function addConnection(h: Harness, token: string, body: Record<string, unknown>): Promise<number> {
  const added = await h.call("POST", "/databases/add_db_connection", { token, json: body });
  expect(added.status, added.text).toBe(201);
  return added.body.db_connection.id as number;
}

/**
 * Fires every statement at once while `db`s are locked, and waits until each one has either
 * answered (refused) or is waiting on a lock: the statements the budgets let through. Returns
 * that count, then releases the locks and returns every response too.
 */
async function fireWhileLocked(
  h: Harness,
  server: Server,
  dbs: TargetDb[],
  statements: { token: string; connectionId: number }[],
): Promise<{ admittedAtOnce: number; responses: ApiResponse[] }> {
  const locks = await Promise.all(dbs.map((db) => server.lock(db)));
  let answered = 0;
  const pending = statements.map(({ token, connectionId }) =>
    h.call("POST", `/databases/${connectionId}/query`, { token, json: { sql: SELECT } }).finally(() => answered++),
  );
  const blocked = async () => (await Promise.all(dbs.map((db) => server.blocked(db)))).reduce((a, b) => a + b, 0);
  let admittedAtOnce = 0;
  try {
    await expect.poll(async () => answered + (admittedAtOnce = await blocked()), { timeout: 15_000, interval: 50 }).toBe(statements.length);
  } finally {
    await Promise.all(locks.map((lock) => lock.release()));
  }
  return { admittedAtOnce, responses: await Promise.all(pending) };
}

const statusCounts = (responses: ApiResponse[]) =>
  responses.reduce<Record<number, number>>((counts, r) => ({ ...counts, [r.status]: (counts[r.status] ?? 0) + 1 }), {});

describe.each(["postgresql", "mysql"] as const)("saved connections to one %s database", (dialect) => {
  const server = servers[dialect];
  let h: Harness;
  let db: TargetDb;
  beforeAll(async () => {
    h = await createHarness({
      // Refusals come at once (no waiting), and the user's own budget is out of the way.
      env: { CONNECTION_MAX_CONCURRENCY: String(DATABASE_LIMIT), CONNECTION_MAX_WAITING: "0", USER_MAX_CONCURRENCY: "100" },
    });
    db = await server.target();
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  it("share one budget however the host is spelled: four connections run the database's limit at once, not four times it", async () => {
    const user = await h.newUser();
    const ids = [];
    for (const host of HOSTS) ids.push(await addConnection(h, user.token, { ...db.body, host }));
    const statements = ids.flatMap((connectionId) => [0, 1].map(() => ({ token: user.token, connectionId })));

    const { admittedAtOnce, responses } = await fireWhileLocked(h, server, [db], statements);

    expect(admittedAtOnce).toBe(DATABASE_LIMIT);
    expect(statusCounts(responses)).toEqual({ 200: DATABASE_LIMIT, 429: statements.length - DATABASE_LIMIT });
    for (const refused of responses.filter((r) => r.status === 429)) {
      expect(refused.body).toMatchObject({ code: "budget_exceeded", detail: expect.stringContaining("this database") });
    }
  });

  it("share one budget across users: a second account adds nothing", async () => {
    const [alice, bob] = [await h.newUser(), await h.newUser()];
    const statements = [];
    for (const [i, user] of [alice, bob, alice, bob].entries()) {
      const connectionId = await addConnection(h, user.token, { ...db.body, host: HOSTS[i] });
      statements.push({ token: user.token, connectionId }, { token: user.token, connectionId });
    }

    const { admittedAtOnce, responses } = await fireWhileLocked(h, server, [db], statements);

    expect(admittedAtOnce).toBe(DATABASE_LIMIT);
    expect(statusCounts(responses)).toEqual({ 200: DATABASE_LIMIT, 429: statements.length - DATABASE_LIMIT });
  });
});

describe("a user's budget across databases", () => {
  const USER_LIMIT = 2;
  let h: Harness;
  const dbs: TargetDb[] = [];
  beforeAll(async () => {
    h = await createHarness({ env: { USER_MAX_CONCURRENCY: String(USER_LIMIT), USER_MAX_WAITING: "0", CONNECTION_MAX_WAITING: "0" } });
    for (let i = 0; i < 3; i++) dbs.push(await postgresTarget());
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all(dbs.map((db) => db.drop()));
  });

  it("limits one user spread over several databases, and no one else", async () => {
    const [spread, other] = [await h.newUser(), await h.newUser()];
    const statements = [];
    for (const db of dbs) statements.push({ token: spread.token, connectionId: await addConnection(h, spread.token, db.body) });
    statements.push({ token: other.token, connectionId: await addConnection(h, other.token, dbs[0]!.body) });

    const { admittedAtOnce, responses } = await fireWhileLocked(h, servers.postgresql, dbs, statements);

    expect(admittedAtOnce).toBe(USER_LIMIT + 1);
    const mine = responses.slice(0, dbs.length);
    expect(statusCounts(mine)).toEqual({ 200: USER_LIMIT, 429: dbs.length - USER_LIMIT });
    expect(mine.find((r) => r.status === 429)!.body).toMatchObject({
      code: "budget_exceeded",
      detail: `Too many statements on your connections: ${USER_LIMIT} running and 0 waiting; try again shortly`,
    });
    expect(responses.at(-1)!.status).toBe(200);
  });
});

describe("saved connections to one SQLite file", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { CONNECTION_QUERIES_PER_MINUTE: "3", USER_QUERIES_PER_MINUTE: "1000" } });
  });
  afterAll(async () => h?.close());

  it("share its queries per minute, whatever name or link reaches the file", async () => {
    const target = await sqliteTarget(h.sqliteRoot);
    const file = target.body.database_name as string;
    symlinkSync(path.join(h.sqliteRoot, file), path.join(h.sqliteRoot, `link-to-${file}`));
    const [alice, bob] = [await h.newUser(), await h.newUser()];
    const run = async (token: string, database_name: string) => {
      const connectionId = await addConnection(h, token, { ...target.body, database_name });
      return (await h.call("POST", `/databases/${connectionId}/query`, { token, json: { sql: "SELECT 1" } })).status;
    };

    const statuses = [await run(alice.token, file), await run(alice.token, `./${file}`), await run(bob.token, `link-to-${file}`), await run(bob.token, file)];

    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
