// The child process that owns one read-only better-sqlite3 connection. better-sqlite3 runs
// statements synchronously and can not be interrupted, so they run here, in a process of
// their own that sqlite.ts kills at the deadline (or when it runs out of memory) and replaces;
// they never block, and can never outlive, the service. sqlite.ts talks to this process over
// the IPC channel with the small request/reply protocol below.

import { readdirSync, readlinkSync, realpathSync, statSync } from "node:fs";

import Database from "better-sqlite3";

import { DomainError, type ErrorCode } from "../../errors.js";
import type { QueryLimits, QueryResult, TableSchema } from "../types.js";
import { RowCollector } from "./collect.js";
import { driverMessage } from "./driver-message.js";
import { introspect } from "./sqlite-introspect.js";

export interface SqliteChildArgs {
  /** Absolute and link-free, checked to be inside SQLITE_ROOT when the connection was opened
   * (sqlite-path.ts): every open here holds the file to that. */
  filePath: string;
  /** What error messages may call the file: never the absolute server path. */
  displayName: string;
}

export type SqliteRequest =
  | { id: number; kind: "query"; sql: string; maxRows: number; maxBytes: number; timeoutMs: number }
  | { id: number; kind: "introspect" }
  | { id: number; kind: "probe" };

export interface ProbeReply {
  version: string;
  readOnly: boolean;
}

export type SqliteReply =
  | { kind: "ready" }
  | { kind: "open_failed"; message: string }
  | { kind: "reply"; id: number; ok: true; value: QueryResult | TableSchema[] | ProbeReply }
  | {
      kind: "reply";
      id: number;
      ok: false;
      code: ErrorCode;
      message: string;
      extra: Record<string, unknown>;
      /** The statement compiled once legacy double-quoted strings were read as strings. */
      legacySql?: string;
      /** This process ran out of memory: replace it rather than keep what it allocated. */
      recycle?: boolean;
    };

const send = process.send?.bind(process);
if (!send) throw new Error("sqlite-child.ts runs only as a child process with an IPC channel");
const post = (reply: SqliteReply) => send(reply);
const { filePath, displayName } = JSON.parse(process.argv[2] ?? "{}") as SqliteChildArgs;

/** The file at the checked path is gone, or is no longer a regular file reached without links
 * (declared before the first open, below, uses it). */
class MovedAway extends Error {}

/** How long opening waits for another process's lock on the file before it says the file is
 * locked (declared before the first open uses it): a commit holds it for milliseconds, but a
 * writer's open transaction (BEGIN EXCLUSIVE, an import) for as long as it likes, and the
 * connection test waited better-sqlite3's default 5 s for it only to say SQLITE_BUSY. */
const OPEN_BUSY_WAIT_MS = 1_000;
/** How long a statement waits for such a lock, once open: better-sqlite3's default, as before;
 * the statement's deadline bounds it too. */
const STATEMENT_BUSY_WAIT_MS = 5_000;

/** Another process's write lock outlasted the wait: the same words whether it met the open or
 * a statement, since it is the same condition and passes the same way. */
const lockedMessage = (waitedMs: number) =>
  `SQLite file "${displayName}" is locked by another process writing it (waited ${waitedMs} ms); try again once it has finished`;

const movedAwayMessage = () =>
  `SQLite file "${displayName}" is no longer a file inside SQLITE_ROOT (a link or something else replaced it, or a directory on its path)`;

// The service closing or gone: nothing else will ever ask this process anything.
process.on("disconnect", () => process.exit(0));

// Which file was opened: taken first, so a replacement racing the open is found at the next request.
let opened = identityOf(filePath);
let db = openReadOnly();
if (db) {
  process.on("message", (request: SqliteRequest) => {
    void (async () => {
      // A file replaced by a rename (a fresh copy moved over it, as backups and ETL jobs do)
      // would otherwise be read from the old, deleted inode for as long as this process lives.
      const now = identityOf(filePath);
      if (now === null) throw new DomainError("connection_failed", `SQLite file "${displayName}" no longer exists`);
      if (now !== opened || !db) {
        // Closed first: its descriptor, at the checked path again once a swap is undone, would
        // pass the check of what the new open holds (holdsTheCheckedFile) for a file elsewhere.
        db?.close();
        db = openReadOnly({ quiet: true });
        if (!db) {
          throw new DomainError("connection_failed", stillTheCheckedFile() ? `SQLite file "${displayName}" was replaced by one that can not be opened` : movedAwayMessage());
        }
        opened = now;
      }
      return handle(db, request);
    })().then(
      (value) => post({ kind: "reply", id: request.id, ok: true, value }),
      (error: unknown) => post(failure(request.id, error)),
    );
  });
  post({ kind: "ready" });
} else {
  process.disconnect();
}

/** Which file `file` names now (device and inode), or null when none can be reached there (gone,
 * a directory on its path replaced by a file, no permission): a stat, a few µs. Node's own error
 * would name the absolute path, which no message may. */
function identityOf(file: string): string | null {
  try {
    const stat = statSync(file, { throwIfNoEntry: false, bigint: true });
    return stat ? `${stat.dev}:${stat.ino}` : null;
  } catch {
    return null;
  }
}

function failure(id: number, error: unknown): SqliteReply {
  if (error instanceof LegacySql) return { kind: "reply", id, ok: false, code: "sql_failed", message: error.message, extra: {}, legacySql: error.sql };
  if (error instanceof DomainError) return { kind: "reply", id, ok: false, code: error.code, message: error.message, extra: error.extra };
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  // SQLITE_BUSY (and its extended codes) is another process's lock held past the wait, not the
  // statement's fault: answered as at open, as a file that can not be read now. Not
  // SQLITE_LOCKED: without shared cache (better-sqlite3 omits it) only this connection's own
  // statement can cause that, which is the statement's to fix.
  if (typeof code === "string" && code.startsWith("SQLITE_BUSY")) {
    return { kind: "reply", id, ok: false, code: "connection_failed", message: lockedMessage(STATEMENT_BUSY_WAIT_MS), extra: {} };
  }
  const tooLarge = tooLargeError(error);
  if (tooLarge) return { kind: "reply", id, ok: false, code: "result_too_large", message: tooLarge.message, extra: {}, recycle: tooLarge.recycle };
  // SQLite's message is the answer to a bad statement (the agent corrects itself from it).
  return { kind: "reply", id, ok: false, code: "sql_failed", message: driverMessage(error instanceof Error ? error.message : String(error)), extra: {} };
}

/** SQLite's "string or blob too big" and "out of memory", and V8's allocation failures, all
 * mean a value or result larger than this process may hold; after running out of memory, the
 * process is better replaced than kept with whatever it still holds. */
function tooLargeError(error: unknown): { message: string; recycle: boolean } | null {
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (code === "SQLITE_TOOBIG") return { message: "A value is larger than SQLite allows; select fewer or narrower columns", recycle: false };
  const v8 = error instanceof RangeError && /allocation failed|invalid string length|invalid array length/i.test(error.message);
  if (code !== "SQLITE_NOMEM" && !v8) return null;
  return {
    message: "The query needed more memory than a SQLite connection may use (SQLITE_MEMORY_MB); select fewer or narrower columns",
    recycle: true,
  };
}

/** The file opened read-only, or null when it can not be (said to the parent at start-up;
 * `quiet` when reopening, where the statement's error says it). */
function openReadOnly(options: { quiet?: boolean } = {}): Database.Database | null {
  let opened: Database.Database | undefined;
  try {
    // The path was checked once, but a directory on it or the file itself may since have been
    // swapped for a link out of SQLITE_ROOT, or for a FIFO that would hold the open for ever.
    if (!stillTheCheckedFile()) throw new MovedAway();
    opened = new Database(filePath, { readonly: true, fileMustExist: true, timeout: OPEN_BUSY_WAIT_MS });
    // And swapped between that look and the open: what SQLite holds must be at the path.
    if (!holdsTheCheckedFile()) throw new MovedAway();
    restoreSafety(opened);
    // Opening is lazy: reading the schema is what finds out the file is not a database.
    opened.prepare("SELECT count(*) FROM sqlite_schema").get();
    opened.pragma(`busy_timeout = ${STATEMENT_BUSY_WAIT_MS}`);
    return opened;
  } catch (error) {
    opened?.close();
    if (!options.quiet) post({ kind: "open_failed", message: openFailure(error) });
    return null;
  }
}

function stillTheCheckedFile(): boolean {
  try {
    return realpathSync(filePath) === filePath && statSync(filePath).isFile();
  } catch (error) {
    // Gone: the open says so, in its own words.
    return (error as NodeJS.ErrnoException).code === "ENOENT";
  }
}

/** Whether the file this process has open is the one at `filePath` (Linux, where the service
 * runs: each open descriptor names its file's path in /proc). Elsewhere, the look before the
 * open is all there is. */
function holdsTheCheckedFile(): boolean {
  let descriptors: string[];
  try {
    descriptors = readdirSync("/proc/self/fd");
  } catch {
    return true;
  }
  return descriptors.some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === filePath;
    } catch {
      return false;
    }
  });
}

function openFailure(error: unknown): string {
  if (error instanceof MovedAway) return movedAwayMessage();
  // SQLite's own messages may carry the absolute path; say what happened in our words.
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (code === "SQLITE_NOTADB") return `"${displayName}" is not a SQLite database`;
  if (code === "SQLITE_BUSY") return lockedMessage(OPEN_BUSY_WAIT_MS);
  if (code === "SQLITE_CANTOPEN" || (error instanceof TypeError && /does not exist/.test(error.message))) {
    return `SQLite file "${displayName}" does not exist or can not be opened`;
  }
  return `Could not open SQLite file "${displayName}"${typeof code === "string" ? ` (${code})` : ""}`;
}

/** Re-applied before every statement: a statement that switched them off lasts one statement.
 * Sorts and temporary tables stay in this process's memory, which SQLITE_MEMORY_MB bounds: in
 * temp files (better-sqlite3's build default) one ORDER BY over generated rows wrote 200 MB a
 * second to the server's disk until its deadline, as many at once as a user may run. */
function restoreSafety(conn: Database.Database): void {
  conn.pragma("query_only = ON");
  conn.pragma("trusted_schema = OFF");
  conn.pragma("temp_store = MEMORY");
}

async function handle(conn: Database.Database, request: SqliteRequest): Promise<QueryResult | TableSchema[] | ProbeReply> {
  restoreSafety(conn);
  switch (request.kind) {
    case "query":
      return runStatement(conn, request, await compile(conn, request.sql));
    case "introspect":
      return introspect(conn);
    case "probe":
      return {
        version: conn.prepare("SELECT sqlite_version()").pluck().get() as string,
        readOnly: conn.readonly && conn.pragma("query_only", { simple: true }) === 1,
      };
  }
}

/** The statement's text rewritten for legacy strings: it goes back to the guard, not to SQLite. */
class LegacySql extends Error {
  constructor(
    message: string,
    readonly sql: string,
  ) {
    super(message);
  }
}

/** Compiles `sql`. When SQLite reports a double-quoted name that is no column, compiles it
 * again with that name read as a string (see guard/sqlite-dqs.ts), for at most
 * MAX_LEGACY_STRINGS names; a statement that compiles that way is handed back as LegacySql. */
async function compile(conn: Database.Database, sql: string): Promise<Database.Statement> {
  try {
    return conn.prepare(sql);
  } catch (error) {
    const message = error instanceof Error ? error.message : "";
    // The parser takes a while to load: only statements that need it pay for it.
    if (!message.startsWith('no such column: "')) throw error;
    const legacy = await import("../guard/sqlite-dqs.js");
    const identifiers = legacy.doubleQuotedIdentifiers(sql);
    const names: string[] = [];
    let last = error;
    let missing = legacy.missingColumnOf(message);
    while (missing !== null && identifiers?.has(missing) && !names.includes(missing)) {
      if (names.length === legacy.MAX_LEGACY_STRINGS) throw legacy.tooManyLegacyStrings();
      names.push(missing);
      const rewritten = legacy.withLegacyStrings(sql, identifiers, names);
      try {
        conn.prepare(rewritten);
      } catch (again) {
        last = again;
        missing = again instanceof Error ? legacy.missingColumnOf(again.message) : null;
        continue;
      }
      throw new LegacySql(message, rewritten);
    }
    throw last;
  }
}

function runStatement(conn: Database.Database, request: Extract<SqliteRequest, { kind: "query" }>, stmt: Database.Statement): QueryResult {
  const startedAt = performance.now();
  let result: QueryResult;
  // Every statement runs in a transaction of its own, like PostgreSQL's BEGIN READ ONLY:
  // SQLite refuses VACUUM (and VACUUM INTO, which otherwise creates its target file before
  // failing) inside one, and ROLLBACK undoes whatever a statement managed to start.
  conn.exec("BEGIN");
  try {
    if (stmt.reader) {
      stmt.raw(true).safeIntegers(true);
      const columns = stmt.columns().map((c) => ({ name: c.name, type: (c.type ?? "").toLowerCase() }));
      // Before the rows are asked for: a statement left iterating keeps the connection busy.
      const headerBytes = headerBytesOf(columns, request);
      result = collect(stmt.iterate() as Iterable<unknown[]>, request, startedAt, columns, headerBytes);
    } else {
      // Not a read. Layer 2 must not rely on layer 1 having refused it: let the database
      // itself answer (readonly + query_only refuse writes with SQLITE_READONLY).
      stmt.run();
      result = new RowCollector(request).result([], startedAt);
    }
  } finally {
    if (conn.inTransaction) conn.exec("ROLLBACK");
  }
  if (!stmt.reader && detachOthers(conn) > 0) {
    throw new DomainError("sql_failed", "ATTACH is not allowed: a connection reads its own database only");
  }
  return result;
}

/** About what a result's column names and declared types add to its JSON. SQLite lets both be
 * any length: 2,000 columns of 5,000-character ones made a 20 MB answer of one row of NULLs,
 * past a 16 MiB cap. Past the cap alone, result_too_large. */
function headerBytesOf(columns: QueryResult["columns"], limits: Pick<QueryLimits, "maxBytes">): number {
  const bytes = columns.reduce((sum, column) => sum + column.name.length + column.type.length + 8, 0);
  if (bytes > limits.maxBytes) {
    throw new DomainError(
      "result_too_large",
      `The result's column names and types alone are about ${bytes} bytes, over the ${limits.maxBytes}-byte result limit; select fewer columns, or name them with AS`,
      { max_bytes: limits.maxBytes },
    );
  }
  return bytes;
}

/** Steps through the rows only as far as the caps want (so a huge result is never
 * materialised), and gives up at the deadline whenever SQLite hands back a row; a statement
 * stuck inside one step is sqlite.ts's to stop. */
function collect(
  source: Iterable<unknown[]>,
  limits: Extract<SqliteRequest, { kind: "query" }>,
  startedAt: number,
  columns: QueryResult["columns"],
  headerBytes: number,
): QueryResult {
  const collector = new RowCollector(limits, headerBytes);
  const deadline = startedAt + limits.timeoutMs;
  let untyped = columns.flatMap((column, i) => (column.type === "" ? [i] : []));
  for (const row of source) {
    if (untyped.length > 0) untyped = untyped.filter((i) => !typedByValue(columns, i, row[i]));
    const blob = largestBlob(row);
    if (blob > limits.maxBytes) {
      // Base64 would allocate a third more than the blob before the collector could size it.
      if (collector.kept.rows > 0) return { ...collector.result(columns, startedAt), truncated: true };
      throw new DomainError(
        "result_too_large",
        `The first row alone is about ${blob} bytes, over the ${limits.maxBytes}-byte result limit; select fewer or narrower columns`,
        { max_bytes: limits.maxBytes },
      );
    }
    if (!collector.push(row)) break;
    if (performance.now() > deadline) {
      throw new DomainError("query_timeout", `The query ran longer than ${limits.timeoutMs} ms and was stopped`, { timeout_ms: limits.timeoutMs });
    }
  }
  return collector.result(columns, startedAt);
}

/** SQLite declares no type for an expression (count(*), a || b): such a column is named by the
 * storage class of its first non-null value, as the other dialects name every column's type.
 * Whether `value` gave column `i` its type. */
function typedByValue(columns: QueryResult["columns"], i: number, value: unknown): boolean {
  const type =
    typeof value === "bigint" ? "integer" : typeof value === "number" ? "real" : typeof value === "string" ? "text" : value instanceof Uint8Array ? "blob" : null;
  if (type === null) return false;
  columns[i] = { ...columns[i]!, type };
  return true;
}

/** The JSON size of the row's largest BLOB once base64-encoded; 0 without one. */
function largestBlob(row: unknown[]): number {
  let largest = 0;
  for (const value of row) if (value instanceof Uint8Array) largest = Math.max(largest, Math.ceil(value.length / 3) * 4 + 14);
  return largest;
}

/** A read-only connection may still ATTACH another existing file; undo it. */
function detachOthers(conn: Database.Database): number {
  const names = conn
    .prepare("SELECT name FROM pragma_database_list WHERE name NOT IN ('main', 'temp')")
    .pluck()
    .all() as string[];
  for (const name of names) conn.exec(`DETACH DATABASE "${name.replaceAll('"', '""')}"`);
  return names.length;
}

