// SQLite driver: one child process per driver owns a read-only better-sqlite3 connection
// (sqlite-child.ts), and runs one statement at a time, so statements never block the event loop.
//
// Why a process: better-sqlite3 is synchronous and (built with SQLITE_OMIT_PROGRESS_CALLBACK,
// no sqlite3_interrupt binding) can not be interrupted, and with SQLITE_DEFAULT_MEMSTATUS=0
// `PRAGMA hard_heap_limit` is accepted but not enforced. A worker thread stuck inside one
// sqlite3_step can not be stopped at all; a process can. So at the deadline the process is
// SIGKILLed and a fresh one started for the next statement; the process runs under an address
// space bound, and whatever ends it (a kill from outside, running out of memory, a crash)
// fails only the statement it was running.

import path from "node:path";

import { DomainError } from "../../errors.js";
import { LegacyStringsError } from "../guard/sqlite-dqs.js";
import { cancelledError, type ConnectionTarget, type DialectDriver, type ProbeInfo, type QueryLimits, type QueryResult, type SchemaSnapshot, type TableSchema } from "../types.js";
import type { ProbeReply, SqliteChildArgs, SqliteReply, SqliteRequest } from "./sqlite-child.js";
import { SqliteProcess, type ProcessExit } from "./sqlite-process.js";

export interface SqliteDriverOptions {
  /** Stop the idle process (closing the file) after this long unused; the next call restarts it. */
  idleTimeoutMs?: number;
  /** Address space of the process in MiB (0: unbounded); see SQLITE_MEMORY_MB. */
  memoryMb?: number;
}

export const DEFAULT_SQLITE_MEMORY_MB = 1536;

/** The process answers a timed-out statement itself when SQLite hands back a row; give it
 * this long past the deadline before killing it. */
const DEADLINE_GRACE_MS = 25;
const INTROSPECT_TIMEOUT_MS = 60_000;
/** Starting a process (and, from TypeScript source, compiling it) can take a second or two on
 * a busy host; CONNECT_TIMEOUT_MS is meant for network connects, so it is only a floor here. */
const MIN_START_TIMEOUT_MS = 10_000;
/** close() waits this long at most for killed processes to be reaped. */
const CLOSE_WAIT_MS = 1000;

type Request = SqliteRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

interface Pending {
  request: Request;
  timeoutMs: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** Its caller went away, or its wait ran out, while it waited for the process to start. */
  cancelled?: boolean;
  /** Ends its wait for the process (behind other statements, or for the file to open) after
   * its own timeout: cleared once it runs, when the statement's own deadline takes over. */
  waiting?: NodeJS.Timeout;
}

export async function createSqliteDriver(target: ConnectionTarget, opts: SqliteDriverOptions = {}): Promise<DialectDriver> {
  if (!target.filePath) throw new DomainError("connection_failed", "No SQLite file was given");
  const args: SqliteChildArgs = { filePath: target.filePath, displayName: safeName(target) };
  const driver = new SqliteDriver(args, Math.max(target.connectTimeoutMs, MIN_START_TIMEOUT_MS), opts);
  await driver.start();
  return driver;
}

/** The name error messages use: the caller's relative name, never the absolute server path. */
function safeName(target: ConnectionTarget): string {
  const name = target.database;
  return name && !path.isAbsolute(name) ? name : path.basename(target.filePath ?? "");
}

const closedError = () => new DomainError("connection_failed", "The SQLite connection was closed");
const timeoutError = (timeoutMs: number) =>
  new DomainError("query_timeout", `The query ran longer than ${timeoutMs} ms and was stopped`, { timeout_ms: timeoutMs });
const waitedTooLongError = (timeoutMs: number) =>
  new DomainError("query_timeout", `The statement waited ${timeoutMs} ms for this SQLite file's connection (busy with other statements, or the file slow to open) and was not run`, {
    timeout_ms: timeoutMs,
  });

class SqliteDriver implements DialectDriver {
  readonly dialect = "sqlite" as const;
  /** Every process not yet exited: the current one, and killed ones not yet reaped. */
  private readonly processes = new Set<SqliteProcess>();
  private current: SqliteProcess | null = null;
  private readonly queue: Pending[] = [];
  private running: { pending: Pending; id: number; proc: SqliteProcess; timer: NodeJS.Timeout } | null = null;
  /** A request has left the queue and waits for the process to start. */
  private dispatching = false;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly args: SqliteChildArgs,
    private readonly startTimeoutMs: number,
    private readonly opts: SqliteDriverOptions,
  ) {}

  async start(): Promise<void> {
    await this.process();
    this.armIdleTimer();
  }

  async query(sql: string, limits: QueryLimits): Promise<QueryResult> {
    const { maxRows, maxBytes, timeoutMs, signal } = limits;
    return (await this.send({ kind: "query", sql, maxRows, maxBytes, timeoutMs }, timeoutMs, signal)) as QueryResult;
  }

  async introspect(): Promise<SchemaSnapshot> {
    const tables = (await this.send({ kind: "introspect" }, INTROSPECT_TIMEOUT_MS)) as TableSchema[];
    return { dialect: "sqlite", tables, introspected_at: new Date().toISOString() };
  }

  async probe(): Promise<ProbeInfo> {
    const startedAt = performance.now();
    const reply = (await this.send({ kind: "probe" }, this.startTimeoutMs)) as ProbeReply;
    return {
      latency_ms: Math.round((performance.now() - startedAt) * 100) / 100,
      server_version: reply.version,
      read_only: reply.readOnly,
      replica: false,
      replication_lag_seconds: null,
    };
  }

  openConnections(): number {
    return this.processes.size;
  }

  close(): Promise<void> {
    if (!this.closing) {
      // Set before shutDown() runs: killing the running process must not start a replacement.
      this.closing = Promise.resolve();
      this.closing = this.shutDown();
    }
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.clearIdleTimer();
    for (const pending of this.queue.splice(0)) pending.reject(closedError());
    if (this.running) {
      // Mid-statement: SQLite may be inside one long step; do not wait for it.
      this.running.pending.reject(closedError());
      this.kill();
    }
    void this.current?.stop();
    this.current = null;
    const exits = Promise.all([...this.processes].map((proc) => proc.exited));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exits, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private send(request: Request, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    if (this.closing) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(cancelledError(signal));
    return new Promise((resolve, reject) => {
      const cancel = () => this.cancel(pending, signal!);
      const settled = () => {
        clearTimeout(pending.waiting);
        signal?.removeEventListener("abort", cancel);
      };
      const pending: Pending = {
        request,
        timeoutMs,
        resolve: (value) => (settled(), resolve(value)),
        reject: (error) => (settled(), reject(error)),
      };
      signal?.addEventListener("abort", cancel, { once: true });
      pending.waiting = setTimeout(() => this.giveUp(pending), timeoutMs + DEADLINE_GRACE_MS);
      this.queue.push(pending);
      this.clearIdleTimer();
      void this.pump();
    });
  }

  /** Its caller went away: answered at once. A queued request leaves the queue; a running one
   * is stopped the only way SQLite can be, its process killed (and a fresh one started), as at a
   * timeout; one waiting for its process to start is skipped once it has (pump). */
  private cancel(pending: Pending, signal: AbortSignal): void {
    pending.cancelled = true;
    pending.reject(cancelledError(signal));
    const queued = this.queue.indexOf(pending);
    if (queued >= 0) this.queue.splice(queued, 1);
    else if (this.running?.pending === pending) {
      this.kill();
      void this.pump();
    }
  }

  /** Its wait for the process ran out: answered, and skipped if its process then starts. */
  private giveUp(pending: Pending): void {
    if (this.running?.pending === pending) return;
    pending.cancelled = true;
    pending.reject(waitedTooLongError(pending.timeoutMs));
    const queued = this.queue.indexOf(pending);
    if (queued >= 0) this.queue.splice(queued, 1);
  }

  /** Starts the next queued request when the process is free: one statement at a time. */
  private async pump(): Promise<void> {
    if (this.running || this.dispatching || this.closing) return;
    const pending = this.queue.shift();
    if (!pending) return this.armIdleTimer();
    this.dispatching = true;
    let proc: SqliteProcess;
    try {
      proc = await this.process();
    } catch (error) {
      this.dispatching = false;
      pending.reject(error);
      return this.pump();
    }
    this.dispatching = false;
    if (this.closing) return pending.reject(closedError());
    if (pending.cancelled) return this.pump();
    clearTimeout(pending.waiting);
    const id = this.nextId++;
    const timer = setTimeout(() => this.timeOut(), pending.timeoutMs + DEADLINE_GRACE_MS);
    this.running = { pending, id, proc, timer };
    proc.send({ ...pending.request, id } as SqliteRequest);
  }

  private settle(proc: SqliteProcess, reply: Extract<SqliteReply, { kind: "reply" }>): void {
    const running = this.running;
    if (!running || running.proc !== proc || running.id !== reply.id) return;
    clearTimeout(running.timer);
    this.running = null;
    if (reply.ok) running.pending.resolve(reply.value);
    else if (reply.legacySql !== undefined) running.pending.reject(new LegacyStringsError(reply.message, reply.legacySql));
    else running.pending.reject(new DomainError(reply.code, reply.message, reply.extra));
    if (!reply.ok && reply.recycle) this.retire(proc);
    void this.pump();
  }

  private timeOut(): void {
    if (!this.running) return;
    this.running.pending.reject(timeoutError(this.running.pending.timeoutMs));
    this.kill();
    void this.pump();
  }

  /** Kills the running request's process, and starts its replacement at once so the next
   * statement finds one warm. */
  private kill(): void {
    const running = this.running;
    if (!running) return;
    clearTimeout(running.timer);
    this.running = null;
    running.proc.kill();
    if (this.current === running.proc) this.current = null;
    if (!this.closing) this.process().catch(() => undefined);
  }

  /** Lets a process go once its statement is answered (it ran out of memory). */
  private retire(proc: SqliteProcess): void {
    if (this.current === proc) this.current = null;
    void proc.stop();
  }

  /** The current process, started (and the file opened) on first use. */
  private process(): Promise<SqliteProcess> {
    if (!this.current?.alive) {
      const proc = new SqliteProcess(this.args, { memoryMb: this.opts.memoryMb ?? DEFAULT_SQLITE_MEMORY_MB, startTimeoutMs: this.startTimeoutMs }, (reply) =>
        this.settle(proc, reply),
      );
      this.processes.add(proc);
      void proc.exited.then((exit) => this.exited(proc, exit));
      proc.ready.catch(() => {
        if (this.current === proc) this.current = null;
      });
      this.current = proc;
    }
    const proc = this.current;
    return proc.ready.then(() => proc);
  }

  /** A process ended: if on its own mid-statement (a crash, a kill from outside, out of
   * memory), that statement fails; the next one gets a fresh process. */
  private exited(proc: SqliteProcess, exit: ProcessExit): void {
    this.processes.delete(proc);
    if (this.current === proc) this.current = null;
    if (this.running?.proc !== proc) return;
    this.running.pending.reject(lostError(exit));
    clearTimeout(this.running.timer);
    this.running = null;
    void this.pump();
  }

  private armIdleTimer(): void {
    const idleMs = this.opts.idleTimeoutMs;
    if (!idleMs || this.closing || this.running || this.dispatching || this.queue.length > 0) return;
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const current = this.current;
      this.current = null;
      void current?.stop();
    }, idleMs);
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

function lostError(exit: ProcessExit): DomainError {
  if (exit.outOfMemory) {
    return new DomainError(
      "result_too_large",
      "The query needed more memory than a SQLite connection may use (SQLITE_MEMORY_MB); select fewer or narrower columns",
    );
  }
  const how = exit.signal ? `was killed (${exit.signal})` : `exited (code ${exit.code})`;
  return new DomainError("unavailable", `The SQLite process of this connection ${how} while running the query; try again`);
}
