// PostgreSQL driver (layer 2): every statement runs in a READ ONLY transaction with a
// statement timeout and is rolled back, on a pg.Pool whose sessions also default to
// read-only. It never decides what may run; the guard (layer 1) does.

import type { Socket } from "node:net";
import pg from "pg";
import type { PoolClient, QueryConfig, QueryResultRow } from "pg";

import { DomainError } from "../../errors.js";
import { throwIfCancelled, type ColumnInfo, type ConnectionTarget, type DialectDriver, type ProbeInfo, type QueryLimits, type QueryResult, type SchemaSnapshot } from "../types.js";
import { driverMessage } from "./driver-message.js";
import { RowCollector } from "./collect.js";
import { INTROSPECTION_SQL, tablesOfCatalogRows, type CatalogRow } from "./postgres-introspect.js";
import { REPLAY_LAG_SECONDS_SQL } from "./postgres-replica.js";
import { connectionWithin, type PoolToWaitOn } from "./pool-wait.js";
import { ReadOnlyStatement, SESSION_CLEANUP, SESSION_STATEMENT_TIMEOUT_MS, type ResultField } from "./postgres-statement.js";
import { BUILTIN_TYPE_NAMES, clientTypes, textParserFor } from "./postgres-types.js";
import { closeWithin } from "./close-within.js";
import { watchReceivedBytes, wireLimitOf, withinOwnWireLimit } from "./wire-limit.js";

export const APPLICATION_NAME = "pulse";

/** Timeout of the driver's own catalog queries (probe, introspection, type names). */
const OWN_STATEMENT_TIMEOUT_MS = SESSION_STATEMENT_TIMEOUT_MS;
/** How long past a query's own timeout we wait for the server before dropping the socket
 * (a server that stopped answering cannot cancel anything itself). */
export const BACKSTOP_GRACE_MS = 2_000;

/** Session defaults sent in the startup packet: defence in depth for the read-only rule and
 * the timeout, and fixed formats so values parse the same on every server. */
const STARTUP_OPTIONS = [
  "default_transaction_read_only=on",
  `statement_timeout=${OWN_STATEMENT_TIMEOUT_MS}`,
  "idle_in_transaction_session_timeout=60000",
  "TimeZone=UTC",
  "DateStyle=ISO,YMD",
  // Intervals in the default text (`1 day 02:00:00`): a database set to sql_standard printed
  // `1 2:00:00`, and read `-1 year 2 mons` with the sign applying to every field.
  "IntervalStyle=postgres",
  "bytea_output=hex",
  // Every double in the shortest text that reads back as itself: a database (or a server before
  // PostgreSQL 12) set to 0 printed 15 digits, and 1/3 lost its last two, silently.
  "extra_float_digits=3",
  // The guard's parser lexes 'a\' as a whole string, as PostgreSQL does with this on (the default
  // since 9.1); a database or role set to off would read the backslash as escaping the quote,
  // and SQL the guard took for text would run. quoteLiteral (sql-text.ts) relies on it too.
  "standard_conforming_strings=on",
  // A role or database set to serializable and deferrable would make every BEGIN READ ONLY wait
  // for a safe snapshot, behind any serializable writer, up to the statement timeout.
  "default_transaction_deferrable=off",
]
  .map((option) => `-c ${option}`)
  .join(" ");

/** The server checks every second, while a statement runs, that Pulse is still connected, and
 * ends the statement once it is not. Without it a statement that sends nothing for a while (a
 * lock wait, a long aggregate) runs on to its timeout after Pulse drops the connection (the
 * backstop, a cut-off result, a shutdown) or dies. PostgreSQL 14 and later; a session setting,
 * not a startup option, since an older server refuses the whole connection for one it does
 * not know. */
const CHECK_CLIENT_GONE = "SET client_connection_check_interval = 1000";

/** The server ends a session idle for its idle_session_timeout (PostgreSQL 14 and later): a
 * database or role setting shorter than the pool's idle time would end pooled connections as
 * they are taken out. A session setting, for the same reason as CHECK_CLIENT_GONE. */
const NO_IDLE_SESSION_TIMEOUT = "SET idle_session_timeout = 0";

/** pg_catalog searched first, as PostgreSQL does when the search_path does not name it: a
 * database or role whose search_path names it after a schema of its owner would otherwise have
 * that schema's functions and operators called for the built-in names (`lower`, `=`) of
 * statements the guard accepted, and of Pulse's own. Such a path loses its pg_catalog entry
 * (PostgreSQL then searches it first, implicitly), keeping the other schemas in their order,
 * the first of them still current_schema(); any other path is left as it is. Every name here is
 * qualified, operators too, for the same reason. */
const CATALOG_FIRST = `
WITH path AS (SELECT s, n FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS p(s, n))
SELECT pg_catalog.set_config('search_path',
  COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ' ORDER BY n) FROM path WHERE s OPERATOR(pg_catalog.<>) 'pg_catalog'), ''), false)
WHERE EXISTS (SELECT FROM path WHERE s OPERATOR(pg_catalog.=) 'pg_catalog' AND n OPERATOR(pg_catalog.>) 1)`;

/** A client that knows when its connection began, and whose end(), by the pool (idle, broken,
 * closing) or by us, closes its socket within a grace (close-within.ts): pg says goodbye and
 * waits for the server to close. */
class PulseClient extends pg.Client {
  /** When the pool began this connection (performance.now()), before resolving and TCP. */
  readonly connectingSince = performance.now();

  override end(): Promise<void>;
  override end(callback: (err: Error) => void): void;
  override end(callback?: (err: Error) => void): Promise<void> | void {
    const ending = callback ? super.end(callback) : super.end();
    closeWithin(streamOf(this));
    return ending;
  }
}

export interface PostgresPoolOptions {
  maxConnections: number;
  idleTimeoutMs: number;
}

export async function createPostgresDriver(target: ConnectionTarget, opts: PostgresPoolOptions): Promise<DialectDriver> {
  const gate = target.gate;
  const where = `${target.host}:${target.port}`;
  const pool = new pg.Pool({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.username,
    password: target.password,
    ssl: target.ssl,
    max: opts.maxConnections,
    idleTimeoutMillis: opts.idleTimeoutMs,
    // Bounds resolving, TCP, TLS and login; onConnect's statements get what is left of it.
    connectionTimeoutMillis: target.connectTimeoutMs,
    application_name: APPLICATION_NAME,
    options: STARTUP_OPTIONS,
    types: clientTypes,
    keepAlive: true,
    allowExitOnIdle: true,
    Client: PulseClient,
    // Each new connection: to a checked address, then not into the metadata store's database.
    ...(gate && { stream: () => gate.socket(target) }),
    onConnect: async (client: pg.ClientBase) => {
      // One bound for the whole connection, as CONNECT_TIMEOUT_MS says: each of these statements
      // with a timeout of its own made a connect to a slow server take six times it.
      const deadline = (client as PulseClient).connectingSince + target.connectTimeoutMs;
      const run = async (text: string) => {
        const left = deadline - performance.now();
        if (left <= 0) throw connectTimedOut(target, where, "connect");
        try {
          return await withinOwnWireLimit(streamOf(client), async () => (await client.query({ text, query_timeout: Math.ceil(left) } as QueryConfig)).rows);
        } catch (err) {
          throw /query read timeout/i.test((err as Error).message) ? connectTimedOut(target, where, "connect") : err;
        }
      };
      try {
        await gate?.checkPostgresSession(run);
        await run(CATALOG_FIRST);
        for (const setting of [CHECK_CLIENT_GONE, NO_IDLE_SESSION_TIMEOUT]) {
          await run(setting).catch((err: unknown) => {
            // Refused by the server (before 14: no such setting; a platform without the check):
            // the statement timeout alone bounds the work left behind, as it did; idle sessions
            // are ended, if the server does, as before.
            if (connectionLost(err)) throw err;
          });
        }
      } catch (err) {
        // The pool answers a failed setup only once the connection has ended, and ends an idle
        // one by saying goodbye and waiting for the server to close it: a server that never
        // does held the connect, and the request waiting on it, for good. Dropped here instead.
        streamOf(client).destroy();
        throw err;
      }
    },
  });
  // An idle connection that dies (server restart, network) is already purged by the pool;
  // without a listener the 'error' event would crash the process.
  pool.on("error", () => {});
  // The pool listens to a client only while it is idle. A checked-out client whose socket
  // breaks (pg_terminate_backend, restart, network cut) fails its query, which discards it,
  // and also emits 'error': without a listener of its own for its whole life, that ends the
  // process.
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });

  const failure = (err: unknown, phase: "connect" | "checkout") => connectionError(err, target, where, phase);

  try {
    (await pool.connect()).release();
  } catch (err) {
    await pool.end().catch(() => {});
    throw failure(err, "connect");
  }

  const typeNames = new Map(BUILTIN_TYPE_NAMES);

  const waitable: PoolToWaitOn<PoolClient> = {
    acquire: () => pool.connect(),
    giveBack: (client) => client.release(),
    // pg hands idle clients out a tick after connect(): those already asked for are not free.
    full: () => pool.totalCount >= opts.maxConnections && pool.idleCount <= pool.waitingCount,
    size: opts.maxConnections,
    where,
  };

  async function checkout(ms: number): Promise<PoolClient> {
    try {
      return await connectionWithin(waitable, ms);
    } catch (err) {
      throw failure(err, "checkout");
    }
  }

  /** Names of result types outside the built-in map (enums, domains, extension types), looked
   * up once per pool. */
  async function lookUpTypeNames(client: PoolClient, fields: ResultField[]): Promise<void> {
    const unknown = [...new Set(fields.map((f) => f.dataTypeID).filter((oid) => !typeNames.has(oid)))];
    const { rows } = await client.query<{ oid: number; name: string }>(
      "SELECT oid::int4 AS oid, format_type(oid, NULL) AS name FROM pg_type WHERE oid = ANY($1::oid[])",
      [unknown],
    );
    for (const row of rows) typeNames.set(row.oid, row.name);
  }

  const columnsOf = (fields: ResultField[]): ColumnInfo[] =>
    fields.map((f) => ({ name: f.name, type: typeNames.get(f.dataTypeID) ?? String(f.dataTypeID) }));

  /** One of the driver's own catalog statements, in the session's defaults (read-only, 30 s
   * timeout), with a client-side read timeout for a server that stopped answering. */
  async function ownQuery<T extends QueryResultRow>(text: string): Promise<{ rows: T[]; ms: number }> {
    const client = await checkout(OWN_STATEMENT_TIMEOUT_MS);
    let broken = false;
    try {
      const config: QueryConfig & { query_timeout: number } = {
        text,
        query_timeout: OWN_STATEMENT_TIMEOUT_MS + BACKSTOP_GRACE_MS,
      };
      const startedAt = performance.now();
      const { rows } = await withinOwnWireLimit(streamOf(client), () => client.query<T>(config));
      return { rows, ms: performance.now() - startedAt };
    } catch (err) {
      broken = connectionLost(err);
      throw statementError(err, OWN_STATEMENT_TIMEOUT_MS, target);
    } finally {
      client.release(broken);
    }
  }

  async function query(sql: string, limits: QueryLimits): Promise<QueryResult> {
    const startedAt = performance.now();
    const client = await checkout(limits.timeoutMs);
    const collector = new RowCollector(limits);
    const statement = new ReadOnlyStatement(sql, limits.timeoutMs, limits.maxRows, limits.maxBytes, collector, textParserFor);
    let destroy = false;
    let backstopHit = false;
    let cutOff = false;
    // Ending a client with a query in flight drops the socket; the statement then fails, and
    // the server's next write fails too, which ends the statement there.
    const drop = () => {
      destroy = true;
      void client.end().catch(() => {});
    };
    const backstop = setTimeout(() => {
      backstopHit = true;
      drop();
    }, limits.timeoutMs + BACKSTOP_GRACE_MS);
    // The server ends the statement within a second of the socket closing (CHECK_CLIENT_GONE).
    limits.signal?.addEventListener("abort", drop, { once: true });
    if (limits.signal?.aborted) drop();
    // TLS swaps the socket at connect; by now `stream` is the one that delivers the rows.
    const stopWatching = watchReceivedBytes(client.connection.stream, wireLimitOf(limits.maxBytes), (received) => {
      cutOff = true;
      collector.cutOff(received);
      drop();
    });
    try {
      client.query(statement);
      let fields: ResultField[];
      try {
        fields = await statement.done;
      } catch (err) {
        throwIfCancelled(limits.signal);
        if (backstopHit) {
          throw new DomainError("query_timeout", `The database did not answer within ${limits.timeoutMs} ms`, {
            timeout_ms: limits.timeoutMs,
          });
        }
        if (!cutOff) {
          destroy = connectionLost(err) || !(await rolledBack(client));
          throw statementError(err, limits.timeoutMs, target);
        }
        // Cut off on the wire: the rows kept are the answer (or result_too_large, if none).
        fields = statement.resultFields;
      }
      const result = collector.result([], startedAt);
      // Usually every type is known: no await, so no extra turn per query. A cut-off client
      // cannot look names up; those columns keep their type's oid.
      if (!cutOff && fields.some((f) => !typeNames.has(f.dataTypeID))) {
        try {
          await lookUpTypeNames(client, fields);
        } catch (err) {
          throwIfCancelled(limits.signal);
          throw statementError(err, OWN_STATEMENT_TIMEOUT_MS, target);
        }
      }
      result.columns = columnsOf(fields);
      return result;
    } finally {
      clearTimeout(backstop);
      limits.signal?.removeEventListener("abort", drop);
      stopWatching();
      // Only a connection back at "idle, no transaction" returns to the pool.
      client.release(destroy || client.getTransactionStatus() !== "I");
    }
  }

  return {
    dialect: "postgresql",
    query,

    async probe(): Promise<ProbeInfo> {
      const { rows, ms } = await ownQuery<ProbeRow>(PROBE_SQL);
      const row = rows[0];
      if (!row) throw new DomainError("connection_failed", `The server at ${where} answered Pulse's probe with no row: not a PostgreSQL server Pulse can use`);
      return {
        latency_ms: Math.round(ms * 100) / 100,
        server_version: row.server_version,
        read_only: row.replica || !row.can_write,
        replica: row.replica,
        replication_lag_seconds: row.lag_seconds === null ? null : Number(row.lag_seconds),
      };
    },

    async introspect(): Promise<SchemaSnapshot> {
      const { rows } = await ownQuery<CatalogRow>(INTROSPECTION_SQL);
      return { dialect: "postgresql", tables: await tablesOfCatalogRows(rows), introspected_at: new Date().toISOString(), default_schema: rows.length > 0 ? rows[0]!.default_schema : "public" };
    },

    openConnections: () => pool.totalCount,

    async close(): Promise<void> {
      if (!pool.ending) await pool.end();
    },
  };
}

interface ProbeRow {
  server_version: string;
  replica: boolean;
  can_write: boolean;
  lag_seconds: string | null;
}

/** One round trip. `read_only` is about the role and server, not our own session default
 * (always on): a standby, or a role that can neither write a table nor create anything, is
 * read-only whatever Pulse does. */
const PROBE_SQL = `
SELECT current_setting('server_version') AS server_version,
       pg_is_in_recovery() AS replica,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
         OR has_database_privilege(current_database(), 'CREATE')
         OR EXISTS (SELECT 1 FROM pg_namespace n
                     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
                       AND has_schema_privilege(n.oid, 'CREATE'))
         OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p', 'v', 'f')
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
                       AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')) AS can_write,
       (${REPLAY_LAG_SECONDS_SQL})::text AS lag_seconds`;

/** Ends a failed statement's transaction, and undoes what it left on the session before it
 * failed (a lock taken, then an error), in one round trip; answers whether the connection is
 * clean again. */
async function rolledBack(client: PoolClient): Promise<boolean> {
  try {
    await client.query(["ROLLBACK", ...SESSION_CLEANUP].join("; "));
    return client.getTransactionStatus() === "I";
  } catch {
    return false;
  }
}

interface PgError {
  code?: string;
  message: string;
  hint?: string;
  position?: string;
}

function statementError(err: unknown, timeoutMs: number, target: ConnectionTarget): DomainError {
  if (err instanceof DomainError) return err;
  const e = err as PgError;
  if (e.code === "57014" && /statement timeout/.test(e.message)) {
    return new DomainError("query_timeout", `The query ran longer than ${timeoutMs} ms and was cancelled by the database`, {
      timeout_ms: timeoutMs,
    });
  }
  if (/query read timeout/i.test(e.message)) {
    return new DomainError("query_timeout", `The database did not answer within ${timeoutMs} ms`, { timeout_ms: timeoutMs });
  }
  if (!connectionLost(err)) {
    const extra: Record<string, unknown> = { sqlstate: e.code };
    if (e.hint) extra.hint = driverMessage(e.hint, target);
    if (e.position) extra.position = Number(e.position);
    return new DomainError("sql_failed", driverMessage(e.message, target), extra);
  }
  return new DomainError(
    "connection_lost",
    driverMessage(`The connection to ${target.host}:${target.port} was lost during the statement: ${e.message}`, target),
  );
}

/** A client's socket (plain or TLS; not in pg's typings). */
const streamOf = (client: pg.ClientBase): Socket => (client as unknown as { connection: { stream: Socket } }).connection.stream;

/** The error ended the connection, not just the statement: no SQLSTATE (a socket error, "Connection
 * terminated unexpectedly"), or one that ends the session (pg_terminate_backend's 57P01). */
function connectionLost(err: unknown): boolean {
  const code = (err as PgError).code;
  return typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code) || endsSession(code);
}

/** SQLSTATEs that mean the session, not the statement, failed (08P01 "protocol violation" is
 * what a statement with $1 placeholders gets, so it stays a statement error). */
function endsSession(code: string): boolean {
  return (code.startsWith("08") && code !== "08P01") || code.startsWith("57P") || code.startsWith("28") || code === "3D000";
}

function connectTimedOut(target: ConnectionTarget, where: string, phase: "connect" | "checkout"): DomainError {
  const detail =
    phase === "connect"
      ? `could not connect to ${where} within ${target.connectTimeoutMs} ms`
      : `could not get a connection to ${where} within ${target.connectTimeoutMs} ms`;
  return new DomainError("connection_failed", driverMessage(detail, target));
}

function connectionError(err: unknown, target: ConnectionTarget, where: string, phase: "connect" | "checkout"): DomainError {
  if (err instanceof DomainError) return err;
  const e = err as PgError & { cause?: unknown };
  const message = String(e?.message ?? err);
  const cause = (e?.cause as { code?: string } | undefined)?.code;
  let detail: string;
  if (/timeout exceeded when trying to connect|connection timeout|timeout expired/i.test(message)) {
    return connectTimedOut(target, where, phase);
  } else if (e.code === "ECONNREFUSED" || cause === "ECONNREFUSED") {
    detail = `could not connect to ${where}: connection refused`;
  } else if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") {
    detail = `could not resolve host "${target.host}"`;
  } else if (typeof e.code === "string" && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(e.code)) {
    detail = `the server's TLS certificate is not trusted (${e.code})`;
  } else if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) {
    // The server's own answer (an unknown database or role, a wrong password).
    detail = message;
  } else {
    // A reset or a server that is not PostgreSQL: the socket's words alone ("read ECONNRESET")
    // do not say which server.
    detail = `could not connect to ${where}: ${message}`;
  }
  return new DomainError("connection_failed", driverMessage(detail, target));
}
