// SQLite driver: one worker thread per driver owns a read-only better-sqlite3 connection
// (sqlite-worker.ts), so slow statements never block the event loop and can time out.
//
// Why a thread and what a timeout can do: better-sqlite3 is synchronous and (built with
// SQLITE_OMIT_PROGRESS_CALLBACK, no sqlite3_interrupt binding) can not be interrupted.
// `worker.terminate()` only stops JavaScript: a thread inside one long sqlite3_step (an
// aggregate over a billion-row recursive CTE, a cross join) keeps running until that step
// returns, and only then exits (measured: terminate() of a 4.5 s step settles ~4.2 s later).
// So at the deadline the caller's promise is rejected at once and the thread is retired;
// the next request gets a fresh thread; a retired thread counts in openConnections() until
// it really exits, and while `maxStoppingWorkers` are still stopping, new statements are
// refused instead of piling up more busy threads. Node also waits for such a thread when the
// process exits, so a shutdown can only be as quick as the slowest statement still stepping.

import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

import { DomainError } from "../../errors.js";
import type { ConnectionTarget, DialectDriver, ProbeInfo, QueryLimits, QueryResult, SchemaSnapshot, TableSchema } from "../types.js";
import type { ProbeReply, SqliteReply, SqliteRequest, SqliteWorkerData } from "./sqlite-worker.js";

export interface SqliteDriverOptions {
  /** Stop the idle thread (closing the file) after this long unused; the next call reopens it. */
  idleTimeoutMs?: number;
  /** Timed-out threads still stuck in SQLite at which new statements are refused. */
  maxStoppingWorkers?: number;
}

/** The worker answers a timed-out statement itself when SQLite hands back a row; give it
 * this long past the deadline before retiring the thread. */
const DEADLINE_GRACE_MS = 25;
const INTROSPECT_TIMEOUT_MS = 60_000;

type Request = SqliteRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

interface Pending {
  request: Request;
  timeoutMs: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export async function createSqliteDriver(target: ConnectionTarget, opts: SqliteDriverOptions = {}): Promise<DialectDriver> {
  if (!target.filePath) throw new DomainError("connection_failed", "No SQLite file was given");
  const data: SqliteWorkerData = { filePath: target.filePath, displayName: safeName(target) };
  const driver = new SqliteDriver(data, Math.max(target.connectTimeoutMs, 1), opts);
  await driver.start();
  return driver;
}

/** The name error messages use: the caller's relative name, never the absolute server path. */
function safeName(target: ConnectionTarget): string {
  const name = target.database;
  return name && !path.isAbsolute(name) ? name : path.basename(target.filePath ?? "");
}

interface Thread {
  worker: Worker;
  /** Settles once the worker has opened the file (or failed to). */
  ready: Promise<Worker>;
}

const closedError = () => new DomainError("connection_failed", "The SQLite connection was closed");

class SqliteDriver implements DialectDriver {
  readonly dialect = "sqlite" as const;
  /** Every worker not yet exited: the current one, and retired ones still stopping. */
  private readonly threads = new Set<Worker>();
  private readonly stopping = new Set<Worker>();
  private current: Thread | null = null;
  private readonly queue: Pending[] = [];
  private running: { pending: Pending; id: number; worker: Worker; timer: NodeJS.Timeout } | null = null;
  /** A request has left the queue and waits for the worker to start. */
  private dispatching = false;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly data: SqliteWorkerData,
    private readonly startTimeoutMs: number,
    private readonly opts: SqliteDriverOptions,
  ) {}

  async start(): Promise<void> {
    await this.thread();
    this.armIdleTimer();
  }

  async query(sql: string, limits: QueryLimits): Promise<QueryResult> {
    const { maxRows, maxBytes, timeoutMs } = limits;
    return (await this.send({ kind: "query", sql, maxRows, maxBytes, timeoutMs }, timeoutMs)) as QueryResult;
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
    return this.threads.size;
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.clearIdleTimer();
    for (const pending of this.queue.splice(0)) pending.reject(closedError());
    if (this.running) {
      // Mid-statement: the worker may be inside SQLite; do not wait for it to finish.
      this.running.pending.reject(closedError());
      this.retire();
    }
    const current = this.current;
    this.current = null;
    if (current) {
      await current.ready.catch(() => undefined);
      await current.worker.terminate();
    }
  }

  private send(request: Request, timeoutMs: number): Promise<unknown> {
    if (this.closing) return Promise.reject(closedError());
    if (this.stopping.size >= (this.opts.maxStoppingWorkers ?? 2)) {
      return Promise.reject(
        new DomainError("unavailable", "Earlier queries on this SQLite database timed out and are still being stopped; try again shortly"),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ request, timeoutMs, resolve, reject });
      this.clearIdleTimer();
      void this.pump();
    });
  }

  /** Starts the next queued request when the worker is free: one statement at a time. */
  private async pump(): Promise<void> {
    if (this.running || this.dispatching || this.closing) return;
    const pending = this.queue.shift();
    if (!pending) return this.armIdleTimer();
    this.dispatching = true;
    let worker: Worker;
    try {
      worker = await this.thread();
    } catch (error) {
      this.dispatching = false;
      pending.reject(error);
      return this.pump();
    }
    this.dispatching = false;
    if (this.closing) return pending.reject(closedError());
    const id = this.nextId++;
    const timer = setTimeout(() => this.timeOut(), pending.timeoutMs + DEADLINE_GRACE_MS);
    this.running = { pending, id, worker, timer };
    worker.postMessage({ ...pending.request, id } as SqliteRequest);
  }

  private settle(reply: Extract<SqliteReply, { kind: "reply" }>): void {
    const running = this.running;
    if (!running || running.id !== reply.id) return;
    clearTimeout(running.timer);
    this.running = null;
    if (reply.ok) running.pending.resolve(reply.value);
    else running.pending.reject(new DomainError(reply.code, reply.message, reply.extra));
    void this.pump();
  }

  private timeOut(): void {
    if (!this.running) return;
    this.running.pending.reject(new DomainError("query_timeout", `The query ran longer than ${this.running.pending.timeoutMs} ms and was stopped`));
    this.retire();
    void this.pump();
  }

  /** Gives up on the running request's worker; a fresh one starts for the next request. */
  private retire(): void {
    const running = this.running;
    if (!running) return;
    clearTimeout(running.timer);
    this.running = null;
    if (this.current?.worker === running.worker) this.current = null;
    running.worker.removeAllListeners("message");
    this.stopping.add(running.worker);
    // Settles only once the thread leaves native code; 'exit' drops it from the counts.
    void running.worker.terminate();
  }

  /** The current worker, started (and the file opened) on first use. */
  private thread(): Promise<Worker> {
    if (!this.current) {
      const thread = this.spawn();
      thread.ready.catch(() => {
        if (this.current === thread) this.current = null;
      });
      this.current = thread;
    }
    return this.current.ready;
  }

  private spawn(): Thread {
    const { url, options } = workerEntry();
    const worker = new Worker(url, { ...options, workerData: this.data });
    // Never what keeps the process alive: a running request's timer does that.
    worker.unref();
    this.threads.add(worker);
    worker.on("exit", () => {
      this.lost(worker, "The SQLite worker stopped unexpectedly");
      this.threads.delete(worker);
      this.stopping.delete(worker);
    });
    worker.on("error", (error) => this.lost(worker, `The SQLite worker failed: ${error.message}`));
    const ready = new Promise<Worker>((resolve, reject) => {
      const fail = (error: DomainError) => {
        clearTimeout(timer);
        void worker.terminate();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new DomainError("connection_failed", `Opening SQLite file "${this.data.displayName}" took longer than ${this.startTimeoutMs} ms`)),
        this.startTimeoutMs,
      );
      worker.on("message", (reply: SqliteReply) => {
        if (reply.kind === "ready") {
          clearTimeout(timer);
          resolve(worker);
        } else if (reply.kind === "open_failed") fail(new DomainError("connection_failed", reply.message));
        else this.settle(reply);
      });
      worker.once("exit", () => fail(new DomainError("connection_failed", `Could not open SQLite file "${this.data.displayName}"`)));
    });
    return { worker, ready };
  }

  /** A worker ended on its own (a crash, not a timeout): fail its request, start afresh. */
  private lost(worker: Worker, message: string): void {
    if (this.running?.worker === worker) {
      this.running.pending.reject(new DomainError("sql_failed", message));
      this.retire();
      void this.pump();
    } else if (this.current?.worker === worker) {
      this.current = null;
    }
  }

  private armIdleTimer(): void {
    const idleMs = this.opts.idleTimeoutMs;
    if (!idleMs || this.closing || this.running || this.dispatching || this.queue.length > 0) return;
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const current = this.current;
      this.current = null;
      void current?.worker.terminate();
    }, idleMs);
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/**
 * Where the worker's code is. Compiled (dist/), sqlite-worker.js sits next to this file. From
 * TypeScript source (vitest, `tsx src/main.ts`) only sqlite-worker.ts does, and a plain worker
 * thread can not load it: on Node 20 a worker given `execArgv: ["--import", "tsx"]` still fails
 * on a .ts entry (ERR_UNKNOWN_FILE_EXTENSION), so a one-line bootstrap loads it through tsx's
 * `tsImport` (tsx is a dev dependency; production never takes this path).
 */
function workerEntry(): { url: URL | string; options: { eval?: boolean } } {
  const compiled = new URL("./sqlite-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return { url: compiled, options: {} };
  const source = new URL("./sqlite-worker.ts", import.meta.url).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((api) => api.tsImport(${JSON.stringify(source)}, ${JSON.stringify(source)}));`;
  return { url: bootstrap, options: { eval: true } };
}
