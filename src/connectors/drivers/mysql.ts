// MySQL / MariaDB driver (layer 2): each statement runs in a READ ONLY transaction with the
// server's statement timeout and a select limit, and is rolled back. It never decides what
// may run; the guard (layer 1) does.
//
// Tested on MariaDB 10.11 with session and transaction READ ONLY (see the integration test):
// refused by the server (error 1792): DML, DDL (CREATE/ALTER/DROP/TRUNCATE/RENAME, also of
// temporary tables, views, routines, users, grants), sequences, LOCK TABLES, LOAD DATA, and a
// routine that writes. NOT stopped by layer 2 alone, so the guard must refuse them and the
// account should lack SUPER and FILE: CALL of a routine that COMMITs and switches read-only off
// for itself (it then writes), SET GLOBAL, SELECT ... INTO OUTFILE/DUMPFILE, FLUSH, ANALYZE
// TABLE, KILL, GET_LOCK, HANDLER, SET SESSION. (MySQL's manual adds CREATE TEMPORARY TABLE.)
// Session variables a statement changes are re-set before every statement, so no statement
// can switch off the timeout, the row limit or read-only for the next one; and the connection
// is reset before it is pooled again, so none leaves a lock or a user variable to the next one.

import type { Connection as CoreConnection } from "mysql2";
import mysql from "mysql2/promise";
import type { PoolConnection } from "mysql2/promise";

import { DomainError } from "../../errors.js";
import { within } from "../../within.js";
import { throwIfCancelled, type ConnectionTarget, type DialectDriver, type ProbeInfo, type QueryLimits, type QueryResult, type SchemaSnapshot } from "../types.js";
import { closeWithin } from "./close-within.js";
import { RowCollector } from "./collect.js";
import { connectionWithin, type PoolToWaitOn } from "./pool-wait.js";
import { cutUnderClient, isFatal, toDomainError } from "./mysql-errors.js";
import { INTROSPECTION_SQL, tablesOfCatalogRows, type CatalogRow } from "./mysql-introspect.js";
import { streamOf, streamRows } from "./mysql-stream.js";
import { columnTypeName } from "./mysql-values.js";
import { wireLimitOf, withinOwnWireLimit } from "./wire-limit.js";

/** Timeout of the driver's own catalog queries (probe, introspection). */
const OWN_STATEMENT_TIMEOUT_MS = 30_000;
/** Client-side backstop past a statement's own timeout, for a server that stopped answering:
 * mysql2 drops the connection. */
export const BACKSTOP_GRACE_MS = 2_000;
/** How long a KILL QUERY may take to be answered (its connection is bounded by the target's
 * connect timeout): a server or network that swallows it must not hold the killer for good. */
const KILL_TIMEOUT_MS = 5_000;

/** "No database selected": MySQL's answer on a connection whose database was dropped. */
const ER_NO_DB_ERROR = 1046;
/** Whether the connection's database still exists. */
const DATABASE_EXISTS_SQL = "SELECT EXISTS (SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()) AS present";

type Flavour = "mariadb" | "mysql";

/** The parts of mysql2's pool we read (not in its typings). */
interface PoolInternals {
  _allConnections: { length: number; get(index: number): CoreConnection };
  _freeConnections: { length: number; get(index: number): CoreConnection & { lastActiveTime: number } };
}

export interface MysqlPoolOptions {
  maxConnections: number;
  idleTimeoutMs: number;
}

/**
 * sql_mode flags under which the server lexes a statement otherwise than the guard's parser
 * does (MySQL's defaults): ANSI_QUOTES reads "a\" as an identifier that ends at the backslash,
 * NO_BACKSLASH_ESCAPES ends 'a\' there, so text the guard read inside a string or a quoted alias
 * would run. The composite modes that include ANSI_QUOTES go too (MariaDB lists them beside
 * their members and would apply them again; ORACLE also switches the grammar); their other
 * members stay.
 */
const LEXING_MODES = ["ANSI_QUOTES", "NO_BACKSLASH_ESCAPES", "ANSI", "DB2", "MAXDB", "MSSQL", "ORACLE", "POSTGRESQL"];

/** The session's sql_mode without LEXING_MODES: each appears at most once in the list, so one
 * REPLACE per flag (no REGEXP_REPLACE, which MySQL 5.7 lacks). */
const LEXED_AS_THE_GUARD = `TRIM(BOTH ',' FROM ${LEXING_MODES.reduce((list, mode) => `REPLACE(${list}, ',${mode},', ',')`, "CONCAT(',', @@SESSION.sql_mode, ',')")})`;

export async function createMysqlDriver(target: ConnectionTarget, opts: MysqlPoolOptions): Promise<DialectDriver> {
  const gate = target.gate;
  const connection: mysql.ConnectionOptions = {
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.username,
    password: target.password,
    ssl: target.ssl ? {} : undefined,
    connectTimeout: target.connectTimeoutMs,
    multipleStatements: false,
    // Never let a server (or a LOAD DATA LOCAL statement) read files of this process.
    flags: ["-LOCAL_FILES", "-MULTI_STATEMENTS"],
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    dateStrings: true,
    jsonStrings: true,
    // Rows read by mysql2's plain parser, not one it writes as code from the result's column
    // names: that one refused a column named __proto__ (or __defineGetter__ ...) by breaking the
    // connection, and a customer's table with one could not be read.
    disableEval: true,
    // A geometry as its bytes, as the server keeps it (its SRID, then its WKB): mysql2's points
    // dropped the SRID and the kind, so a LINESTRING and a MULTIPOINT of the same points were one
    // value. ST_AsText(column) reads it as text.
    typeCast: (field, next) => (field.type === "GEOMETRY" ? field.buffer() : next()),
    connectAttributes: { program_name: "pulse" },
    // Each new connection goes to a checked address (the policy and Pulse's own servers).
    ...(gate && { stream: () => gate.socket(target).connect(target.port, target.host).setNoDelay(true).setKeepAlive(true) }),
  };
  // mysql2's own idle reaper only runs with maxIdle < connectionLimit and then closes every
  // idle connection above maxIdle within a second, so it is off and ours closes by age only.
  const pool = mysql.createPool({ ...connection, connectionLimit: opts.maxConnections, maxIdle: opts.maxConnections });
  const internals = pool.pool as unknown as PoolInternals;
  // A pooled connection listens for its first 'error' only (to leave the pool); a lost
  // connection can emit more than one (the server's error packet, then the closed socket), and
  // an 'error' nobody listens to ends the process. Statements learn of it in mysql-stream.ts.
  pool.pool.on("connection", (conn) => {
    conn.on("error", () => {});
  });
  const reaper = setInterval(
    () => {
      const free = internals._freeConnections;
      for (let i = free.length - 1; i >= 0; i--) {
        const conn = free.get(i);
        if (Date.now() - conn.lastActiveTime > opts.idleTimeoutMs) letGo(conn);
      }
    },
    Math.min(1_000, Math.max(50, opts.idleTimeoutMs / 2)),
  );
  reaper.unref();
  const where = `${target.host}:${target.port}`;
  let closed = false;

  const connectTimedOut = () => new DomainError("connection_failed", `could not connect to ${where} within ${target.connectTimeoutMs} ms`);

  /** Ends the pool: each connection says goodbye (COM_QUIT), then is closed within a grace,
   * whether the server closes it or not. Only once the driver's statements are done
   * (guarded.ts), so none is cut by the grace. */
  async function endPool(): Promise<void> {
    const all = internals._allConnections;
    for (let i = 0; i < all.length; i++) closeWithin(streamOf(all.get(i)));
    await pool.end();
  }

  // One bound for the first connection and the statement on it, as CONNECT_TIMEOUT_MS says:
  // mysql2's bounds the login only, and the statement had one of its own, 2 s more besides.
  const connectBy = performance.now() + target.connectTimeoutMs;
  let flavour: Flavour;
  try {
    const conn = await pool.getConnection();
    try {
      const [row] = await commandWithin(conn, "SELECT VERSION() AS version", Math.max(1, connectBy - performance.now()));
      flavour = /mariadb/i.test(String(row?.version)) ? "mariadb" : "mysql";
    } catch (err) {
      // Closed now: a goodbye would wait behind the statement, which may never end.
      discard(conn);
      throw (err as { code?: string }).code === "PROTOCOL_SEQUENCE_TIMEOUT" ? connectTimedOut() : err;
    }
    conn.release();
  } catch (err) {
    clearInterval(reaper);
    await endPool().catch(() => {});
    throw toDomainError(err, target, where, OWN_STATEMENT_TIMEOUT_MS);
  }

  /** One SET for every guard variable: re-applied before each statement (one round trip),
   * because the statement before may have changed any of them for the session. The sql_mode
   * keeps the database's modes but those that change how text is lexed (LEXING_MODES): the
   * server must read a statement as the guard did. */
  function sessionGuards(timeoutMs: number, selectLimit: number | null): string {
    const limit = selectLimit === null ? "DEFAULT" : String(selectLimit);
    const timeout =
      flavour === "mariadb"
        ? `max_statement_time = ${(Math.max(1, timeoutMs) / 1000).toFixed(3)}`
        : `max_execution_time = ${Math.max(1, Math.ceil(timeoutMs))}`;
    const readOnly = flavour === "mariadb" ? "tx_read_only = 1" : "transaction_read_only = 1";
    // NAMES: the character set mysql2 asks for at connect (its default), which resetting the
    // connection sets back to the server's default on MySQL (MariaDB keeps it).
    // group_concat_max_len: MariaDB's JSON_ARRAYAGG (introspection) obeys it.
    return (
      `SET SESSION ${readOnly}, autocommit = 1, ${timeout}, sql_select_limit = ${limit}, time_zone = '+00:00', sql_mode = ${LEXED_AS_THE_GUARD}, ` +
      "group_concat_max_len = 1073741824, NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"
    );
  }

  const waitable: PoolToWaitOn<PoolConnection> = {
    acquire: () => pool.getConnection(),
    giveBack: (conn) => conn.release(),
    full: () => internals._allConnections.length >= opts.maxConnections && internals._freeConnections.length === 0,
    size: opts.maxConnections,
    where,
  };

  async function checkout(ms: number): Promise<PoolConnection> {
    try {
      return await connectionWithin(waitable, ms);
    } catch (err) {
      throw toDomainError(err, target, where, OWN_STATEMENT_TIMEOUT_MS);
    }
  }

  async function query(sql: string, limits: QueryLimits): Promise<QueryResult> {
    const startedAt = performance.now();
    const conn = await checkout(limits.timeoutMs);
    // One bound for the statement and the round trips around it, as PostgreSQL's pipeline has:
    // each with a bound of its own, a slow link made a request take four times its timeout.
    const deadline = performance.now() + limits.timeoutMs + BACKSTOP_GRACE_MS;
    const left = () => Math.max(1, deadline - performance.now());
    const collector = new RowCollector(limits);
    let reusable = true;
    let stop: (() => void) | undefined;
    let sentOn: number | undefined;
    try {
      await commandWithin(conn, sessionGuards(limits.timeoutMs, limits.maxRows + 1), left());
      await commandWithin(conn, "START TRANSACTION READ ONLY", left());
      const threadId = Number(coreOf(conn).threadId);
      // Its caller gone, the statement is killed as at the backstop; the stream then ends.
      stop = () => void killQuery(threadId).catch(() => {});
      limits.signal?.addEventListener("abort", stop, { once: true });
      throwIfCancelled(limits.signal);
      sentOn = threadId;
      const { fields, complete } = await streamRows(coreOf(conn), sql, left(), wireLimitOf(limits.maxBytes), collector, () => killQuery(threadId));
      // Reset within what is left of the bound; past it, the connection goes rather than the
      // answer wait (the open transaction dies with it).
      reusable = complete && (await resets(conn, left()));
      const result = collector.result([], startedAt);
      result.columns = fields.map((f) => ({ name: f.name, type: columnTypeName(f) }));
      return result;
    } catch (err) {
      // A statement busy on the server notices its connection is gone only at its next write,
      // maybe at its timeout; meanwhile its place in the connection budget, freed on return,
      // would let one more statement run than the database was promised. So it is killed
      // before the error goes up (the kill is bounded; a failed one changes nothing). Not when
      // its caller left (`stop` kills), nor at the backstop: the server's own timeout, earlier,
      // ended it unless the server answers no one, whom a kill would only wait for.
      if (sentOn !== undefined && !limits.signal?.aborted && cutUnderClient(err)) await killQuery(sentOn).catch(() => {});
      // No database selected (MySQL): it was dropped since the connection opened (see ownQuery).
      if (reusable) reusable = !isFatal(err) && (err as { errno?: number }).errno !== ER_NO_DB_ERROR && (await resets(conn, left()));
      throwIfCancelled(limits.signal);
      throw toDomainError(err, target, where, limits.timeoutMs, true);
    } finally {
      if (stop) limits.signal?.removeEventListener("abort", stop);
      // A KILL QUERY sent for its caller may arrive after the statement ended: it would stop the
      // connection's next statement, someone else's. Not worth the risk: the connection goes.
      if (limits.signal?.aborted) reusable = false;
      if (reusable) conn.release();
      else discard(conn);
    }
  }

  /** From a connection of its own: the pool may have no other to spare. */
  async function killQuery(threadId: number): Promise<void> {
    const killer = await mysql.createConnection(connection);
    killer.on("error", () => {}); // a socket error between uses would otherwise end the process
    try {
      await killer.query({ sql: `KILL QUERY ${threadId}`, timeout: KILL_TIMEOUT_MS });
    } finally {
      letGo(coreOf(killer));
    }
  }

  /** Runs the driver's own read-only catalog statements on one connection. */
  async function ownQuery<T>(run: (sql: (text: string) => Promise<mysql.RowDataPacket[]>) => Promise<T>): Promise<T> {
    // A database dropped since a pooled connection opened is still its database (MariaDB) or
    // none (MySQL): its catalog would read as empty, and the probe as fine. Such connections are
    // let go, until a new one says what is wrong (a dropped database fails to connect); past the
    // pool's size, a server that keeps saying so is taken at its word.
    for (let attempt = 0; ; attempt++) {
      const conn = await checkout(OWN_STATEMENT_TIMEOUT_MS);
      let reusable = true;
      const sql = (text: string) => command(conn, text, OWN_STATEMENT_TIMEOUT_MS);
      try {
        await sql(sessionGuards(OWN_STATEMENT_TIMEOUT_MS, null));
        const [selected] = await sql(DATABASE_EXISTS_SQL);
        if (Number(selected?.present) !== 1) {
          reusable = false;
          if (attempt < opts.maxConnections) continue;
          throw new DomainError("connection_failed", `The database ${target.database} on ${where} does not exist, or this account cannot see it`);
        }
        return await withinOwnWireLimit(streamOf(coreOf(conn)), () => run(sql));
      } catch (err) {
        reusable = !isFatal(err);
        throw toDomainError(err, target, where, OWN_STATEMENT_TIMEOUT_MS, true);
      } finally {
        if (reusable) conn.release();
        else discard(conn);
      }
    }
  }

  return {
    dialect: "mysql",
    query,

    probe: () =>
      ownQuery(async (sql): Promise<ProbeInfo> => {
        const startedAt = performance.now();
        const rows = await sql(PROBE_SQL);
        const latency = performance.now() - startedAt;
        const row = rows[0];
        if (!row) throw new DomainError("connection_failed", `The server at ${where} answered Pulse's probe with no row: not a MySQL or MariaDB server Pulse can use`);
        const replica = await replicaStatus(sql);
        return {
          latency_ms: Math.round(latency * 100) / 100,
          server_version: String(row.version),
          read_only: Number(row.server_read_only) === 1 || Number(row.innodb_read_only) === 1 || Number(row.can_write) === 0,
          replica: replica !== null,
          replication_lag_seconds: replica?.lag ?? null,
        };
      }),

    introspect: () =>
      ownQuery(async (sql): Promise<SchemaSnapshot> => {
        const rows = (await sql(INTROSPECTION_SQL)) as (CatalogRow & mysql.RowDataPacket)[];
        return { dialect: "mysql", tables: await tablesOfCatalogRows(rows), introspected_at: new Date().toISOString() };
      }),

    // mysql2 keeps ended connections in its list after pool.end(), hence `closed`.
    openConnections: () => (closed ? 0 : internals._allConnections.length),

    async close(): Promise<void> {
      closed = true;
      clearInterval(reaper);
      // Every connection is told to end; the first that cannot answers for the pool: one whose
      // connect had failed (timed out) ends with that error. Nothing is left to do about it.
      await endPool().catch(() => {});
    },
  };
}

/** `read_only` is about the server and role, not our own session setting (always on): a
 * read-only server, or an account without write grants here, is read-only whatever Pulse
 * does. Grants through roles are not seen (best effort). */
const PROBE_SQL = `
SELECT VERSION() AS version, @@global.read_only AS server_read_only, @@innodb_read_only AS innodb_read_only,
       EXISTS (SELECT 1 FROM information_schema.USER_PRIVILEGES
                WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')
                  AND PRIVILEGE_TYPE IN ('INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'ALTER', 'SUPER')
               UNION ALL
               SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES
                WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')
                  AND TABLE_SCHEMA = DATABASE() AND PRIVILEGE_TYPE IN ('INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'ALTER')
               UNION ALL
               SELECT 1 FROM information_schema.TABLE_PRIVILEGES
                WHERE GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')
                  AND TABLE_SCHEMA = DATABASE() AND PRIVILEGE_TYPE IN ('INSERT', 'UPDATE', 'DELETE', 'DROP', 'ALTER')) AS can_write`;

/** Replica status, or null when this is no replica. Reading it needs REPLICATION CLIENT /
 * REPLICA MONITOR; without that privilege the answer is "unknown", reported as not a replica. */
async function replicaStatus(sql: (text: string) => Promise<mysql.RowDataPacket[]>): Promise<{ lag: number | null } | null> {
  for (const statement of ["SHOW REPLICA STATUS", "SHOW SLAVE STATUS"]) {
    try {
      const rows = await sql(statement);
      const row = rows[0];
      if (!row) return null;
      const lag = row.Seconds_Behind_Source ?? row.Seconds_Behind_Master ?? null;
      return { lag: lag === null ? null : Number(lag) };
    } catch (err) {
      if (isFatal(err)) throw err;
      if ((err as { errno?: number }).errno === 1064) continue; // older server: try the old name
      return null;
    }
  }
  return null;
}

/** A statement of the driver's own, with mysql2's client-side timeout past the server's, for a
 * server that stopped answering. */
async function command(conn: PoolConnection, sql: string, timeoutMs: number): Promise<mysql.RowDataPacket[]> {
  return commandWithin(conn, sql, timeoutMs + BACKSTOP_GRACE_MS);
}

/** Whether the connection was reset within `ms`, so that it may be pooled again. The reset
 * (COM_RESET_CONNECTION) rolls the transaction back, in the one round trip ROLLBACK took, and
 * also undoes what ROLLBACK leaves, which a stored function the guard cannot see into may have
 * set: GET_LOCK locks, which the idle connection would hold, and user variables, which the next
 * statement on it (another user's) would read. Session variables go back to the server's
 * defaults too: sessionGuards sets Pulse's again before every statement. A server before MySQL
 * 5.7.3 or MariaDB 10.2.4 refuses the reset: its connections are not reused. */
async function resets(conn: PoolConnection, ms: number): Promise<boolean> {
  try {
    // Past `ms` the caller destroys the connection, which fails the reset still waiting.
    await within(conn.reset(), ms, "resetting the connection");
    return true;
  } catch {
    return false;
  }
}

/** A statement the client waits for `ms` at most (mysql2 then ends the connection). */
async function commandWithin(conn: PoolConnection, sql: string, ms: number): Promise<mysql.RowDataPacket[]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>({ sql, timeout: ms });
  return rows;
}

/** The callback-style connection under a promise one (its typing in mysql2 says otherwise). */
function coreOf(conn: mysql.Connection): CoreConnection {
  return (conn as unknown as { connection: CoreConnection }).connection;
}

/** Closed within a grace: mysql2's destroy() only half-closes, which a silent peer never
 * completes, leaving the socket open for good. */
function letGo(conn: CoreConnection): void {
  conn.destroy();
  closeWithin(streamOf(conn));
}

/** Out of the pool and closed now: mysql2's destroy() only half-closes, which a silent peer
 * never completes, leaving the socket open for good. */
function discard(conn: PoolConnection): void {
  conn.destroy();
  streamOf(coreOf(conn)).destroy();
}
