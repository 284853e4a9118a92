// Realistic reads on Chinook in all three dialects (window functions, lateral joins, recursive
// CTEs, JSON functions) pass the guard and return through the guarded connector exactly what
// the database returns to its own driver, line endings included.

import Database from "better-sqlite3";
import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createBudget } from "../../src/connectors/budget.js";
import { loadGuard } from "../../src/connectors/guard/index.js";
import { GuardedConnector } from "../../src/connectors/guarded.js";
import { openDriver } from "../../src/connectors/open.js";
import type { ConnectionTarget, Dialect } from "../../src/connectors/types.js";
import { loadChinookMaria, loadChinookPostgres } from "../support/chinook.js";
import { MARIADB, PG } from "../support/services.js";
import { CHINOOK_SQLITE } from "../support/targets.js";

const QUERIES: Record<Dialect, string[]> = {
  postgresql: [
    `SELECT c.country, sum(i.total)::text AS revenue, rank() OVER (ORDER BY sum(i.total) DESC) AS rnk
       FROM customer c JOIN invoice i ON i.customer_id = c.customer_id GROUP BY c.country ORDER BY rnk, c.country LIMIT 10`,
    `SELECT g.name, t.name AS track, t.milliseconds FROM genre g,
       LATERAL (SELECT name, milliseconds FROM track WHERE genre_id = g.genre_id ORDER BY milliseconds DESC, track_id LIMIT 2) t
      ORDER BY g.name, t.milliseconds DESC`,
    `WITH RECURSIVE chain AS (SELECT employee_id, reports_to, 0 AS depth FROM employee WHERE reports_to IS NULL
       UNION ALL SELECT e.employee_id, e.reports_to, c.depth + 1 FROM employee e JOIN chain c ON e.reports_to = c.employee_id)
     SELECT employee_id, depth FROM chain ORDER BY employee_id`,
    `SELECT json_build_object('artist', ar.name, 'albums', count(al.album_id))::text AS doc
       FROM artist ar JOIN album al ON al.artist_id = ar.artist_id GROUP BY ar.artist_id, ar.name ORDER BY count(al.album_id) DESC, ar.name LIMIT 5`,
    `SELECT (jsonb_build_object('n', count(*)) ->> 'n') AS n FROM track`,
    `SELECT billing_country, count(*) AS invoices, avg(total)::numeric(10,2)::text AS avg_total FROM invoice GROUP BY 1 HAVING count(*) > 20 ORDER BY 1`,
  ],
  mysql: [
    `SELECT c.Country, CAST(SUM(i.Total) AS CHAR) AS revenue, RANK() OVER (ORDER BY SUM(i.Total) DESC) AS rnk
       FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId GROUP BY c.Country ORDER BY rnk, c.Country LIMIT 10`,
    `WITH RECURSIVE chain AS (SELECT EmployeeId, ReportsTo, 0 AS depth FROM Employee WHERE ReportsTo IS NULL
       UNION ALL SELECT e.EmployeeId, e.ReportsTo, c.depth + 1 FROM Employee e JOIN chain c ON e.ReportsTo = c.EmployeeId)
     SELECT EmployeeId, depth FROM chain ORDER BY EmployeeId`,
    `SELECT JSON_OBJECT('artist', ar.Name, 'albums', COUNT(al.AlbumId)) AS doc
       FROM Artist ar JOIN Album al ON al.ArtistId = ar.ArtistId GROUP BY ar.ArtistId, ar.Name ORDER BY COUNT(al.AlbumId) DESC, ar.Name LIMIT 5`,
    `SELECT JSON_EXTRACT(JSON_OBJECT('n', COUNT(*)), '$.n') AS n FROM Track`,
    `SELECT g.Name, t.Name AS track, t.Milliseconds FROM Genre g JOIN Track t ON t.GenreId = g.GenreId
      WHERE t.TrackId IN (SELECT TrackId FROM (SELECT TrackId, ROW_NUMBER() OVER (PARTITION BY GenreId ORDER BY Milliseconds DESC, TrackId) AS rn FROM Track) x WHERE rn <= 2)
      ORDER BY g.Name, t.Milliseconds DESC`,
    `SELECT BillingCountry, COUNT(*) AS invoices, CAST(ROUND(AVG(Total), 2) AS CHAR) AS avg_total FROM Invoice GROUP BY BillingCountry HAVING COUNT(*) > 20 ORDER BY BillingCountry`,
  ],
  sqlite: [
    `SELECT c.Country, printf('%.2f', SUM(i.Total)) AS revenue, RANK() OVER (ORDER BY SUM(i.Total) DESC) AS rnk
       FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId GROUP BY c.Country ORDER BY rnk, c.Country LIMIT 10`,
    `WITH RECURSIVE chain AS (SELECT EmployeeId, ReportsTo, 0 AS depth FROM Employee WHERE ReportsTo IS NULL
       UNION ALL SELECT e.EmployeeId, e.ReportsTo, c.depth + 1 FROM Employee e JOIN chain c ON e.ReportsTo = c.EmployeeId)
     SELECT EmployeeId, depth FROM chain ORDER BY EmployeeId`,
    `SELECT json_object('artist', ar.Name, 'albums', COUNT(al.AlbumId)) AS doc
       FROM Artist ar JOIN Album al ON al.ArtistId = ar.ArtistId GROUP BY ar.ArtistId, ar.Name ORDER BY COUNT(al.AlbumId) DESC, ar.Name LIMIT 5`,
    `SELECT j.value AS genre FROM json_each((SELECT json_group_array(Name) FROM (SELECT Name FROM Genre ORDER BY GenreId LIMIT 3))) j`,
    `SELECT g.Name, t.Name AS track, t.Milliseconds FROM Genre g JOIN Track t ON t.GenreId = g.GenreId
      WHERE t.TrackId IN (SELECT TrackId FROM (SELECT TrackId, ROW_NUMBER() OVER (PARTITION BY GenreId ORDER BY Milliseconds DESC, TrackId) AS rn FROM Track) WHERE rn <= 2)
      ORDER BY g.Name, t.Milliseconds DESC`,
    `SELECT BillingCountry, COUNT(*) AS invoices, printf('%.2f', AVG(Total)) AS avg_total FROM Invoice GROUP BY BillingCountry HAVING COUNT(*) > 20 ORDER BY BillingCountry`,
  ],
};

/** Compare as text; JSON documents by content, since a driver may hand them over parsed. */
const normalise = (rows: unknown[][]) =>
  rows.map((row) =>
    row.map((v) => {
      if (v === null) return null;
      if (typeof v === "object") return JSON.stringify(v);
      const text = String(v);
      return text.startsWith("{") ? JSON.stringify(JSON.parse(text)) : text;
    }),
  );

interface Side {
  connector: GuardedConnector;
  direct(sql: string): Promise<unknown[][]>;
  close(): Promise<void>;
}

const base = { host: "", port: 0, database: "", username: "", password: "", ssl: false, connectTimeoutMs: 10_000 };
const limits = { maxRows: 10_000, maxBytes: 10_000_000, timeoutMs: 10_000 };
const budget = () => createBudget({ concurrency: 2, maxWaiting: 4, perMinute: 10_000, maxWaitMs: 5000 });

async function guarded(target: ConnectionTarget) {
  return new GuardedConnector(1, 1, "chinook", await openDriver(target, { maxConnections: 2, idleTimeoutMs: 10_000 }), limits, budget());
}

const sides: Record<Dialect, () => Promise<Side>> = {
  async postgresql() {
    const db = await loadChinookPostgres();
    const connector = await guarded({ ...base, dialect: "postgresql", host: PG.host, port: PG.port, database: db.name, username: PG.user });
    const client = new pg.Client({ ...PG, database: db.name });
    await client.connect();
    return {
      connector,
      direct: async (sql) => (await client.query({ text: sql, rowMode: "array" })).rows,
      async close() {
        await connector.close();
        await client.end();
        await db.drop();
      },
    };
  },
  async mysql() {
    const db = await loadChinookMaria();
    const connector = await guarded({ ...base, dialect: "mysql", host: MARIADB.host, port: MARIADB.port, database: db.name, username: MARIADB.user });
    const conn = await mysql.createConnection({ ...MARIADB, database: db.name, rowsAsArray: true, supportBigNumbers: true, bigNumberStrings: true });
    return {
      connector,
      direct: async (sql) => (await conn.query(sql))[0] as unknown[][],
      async close() {
        await connector.close();
        await conn.end();
        await db.drop();
      },
    };
  },
  async sqlite() {
    const connector = await guarded({ ...base, dialect: "sqlite", database: "Chinook_Sqlite.sqlite", filePath: CHINOOK_SQLITE });
    const db = new Database(CHINOOK_SQLITE, { readonly: true });
    return {
      connector,
      direct: async (sql) => db.prepare(sql).raw(true).all() as unknown[][],
      async close() {
        await connector.close();
        db.close();
      },
    };
  },
};

beforeAll(() => loadGuard());

describe.each(["postgresql", "mysql", "sqlite"] as const)("Chinook reads on %s", (dialect) => {
  let side: Side;
  beforeAll(async () => {
    side = await sides[dialect]();
  }, 120_000);
  afterAll(async () => side?.close());

  it.each(QUERIES[dialect].map((sql, i) => [i + 1, sql]))("query %i returns what the database returns directly", async (_, sql) => {
    const viaPulse = await side.connector.query(sql as string);
    const direct = await side.direct(sql as string);
    expect(direct.length).toBeGreaterThan(0);
    expect(viaPulse.truncated).toBe(false);
    expect(normalise(viaPulse.rows)).toEqual(normalise(direct));
  });

  it("reads bare carriage returns and form feeds as the server does: a space, and a carriage return the end of a line comment only on PostgreSQL", async () => {
    const lines = "SELECT 1 AS a\r,\f2 AS b\r";
    const commented = "SELECT 1 AS a -- the first\r, 2 AS b";
    for (const sql of [lines, commented]) {
      expect(normalise((await side.connector.query(sql)).rows)).toEqual(normalise(await side.direct(sql)));
    }
    expect(normalise((await side.connector.query(commented)).rows)).toEqual(dialect === "postgresql" ? [["1", "2"]] : [["1"]]);
  });
});
