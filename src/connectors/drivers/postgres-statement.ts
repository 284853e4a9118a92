// One guarded statement on one PostgreSQL connection, as a node-postgres "submittable" that
// speaks the extended protocol itself (the surface pg-cursor uses):
//
//   Parse/Bind/Execute  BEGIN READ ONLY
//   Parse/Bind/Execute  SET LOCAL statement_timeout = N        (unless N is the session's)
//   Parse/Bind/Describe/Execute(rows = batch)   the user's statement, in an unnamed portal
//   Parse/Bind/Execute  ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all(); DEALLOCATE ALL; Sync
//                       (in the first round trip already when its batch covers maxRows+1)
//
// Why not three client.query() calls (BEGIN + SET; statement; ROLLBACK)? node-postgres waits
// for ReadyForQuery between queries: three round trips. Pipelined, the common case is one.
// Measured through a local proxy adding ~1 ms each way: 3.5 ms per SELECT 1 against 8.6 ms
// for the three-call version (on loopback both are ~0.2 ms, noise). Parse refuses multiple
// statements ("cannot insert multiple commands into a prepared statement"), and the portal
// lets us fetch maxRows+1 rows without the server sending, or us buffering, the rest. Since
// PostgreSQL 11 each completed Execute disarms the statement timer and the next message arms
// it afresh, so SET LOCAL governs the statement even mid-pipeline (the timeout test proves it).

import type { Connection, Submittable } from "pg";
import { serialize } from "pg-protocol";

import type { RowCollector } from "./collect.js";

/** The pg Connection methods used here (typed by hand: @types/pg lags the real signatures). */
interface Wire {
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: unknown[] }): void;
  describe(msg: { type: "P" | "S"; name?: string }): void;
  execute(msg?: { portal?: string; rows?: number }): void;
  flush(): void;
  sync(): void;
  sendCopyFail(msg: string): void;
  stream: { write(chunk: Buffer): boolean; cork?: () => void; uncork?: () => void };
}

export interface ResultField {
  name: string;
  dataTypeID: number;
}

/** Rows asked for in the first Execute; later batches are sized from the bytes seen so far.
 * The default cap (QUERY_MAX_ROWS 1,000, plus the row that tells truncation) fits, so a
 * default read finishes in one round trip; a larger cap pays a second trip per batch, but no
 * statement makes the server send more than this many rows past the byte cap. */
const FIRST_BATCH = 1_001;
const MAX_BATCH = 10_000;

type Stage = "begin" | "timeout" | "statement" | "rollback" | "unlock" | "deallocate" | "done";

/** What a statement can leave on a pooled session that ROLLBACK does not undo, undone after
 * every statement whatever its text says: a view or a function (which neither the guard nor the
 * text can see into) may take a session advisory lock, which the idle connection would hold, or
 * PREPARE a statement (PL/pgSQL EXECUTE), which would outlive it. Pulse's own queries use no
 * named prepared statements, so DEALLOCATE ALL drops none that node-postgres counts on. Each
 * runs in an implicit transaction of its own, in the pipeline's round trip. */
export const SESSION_CLEANUP = ["SELECT pg_catalog.pg_advisory_unlock_all()", "DEALLOCATE ALL"] as const;

/** statement_timeout every pooled session starts with (postgres.ts sends it at startup). */
export const SESSION_STATEMENT_TIMEOUT_MS = 30_000;

export class ReadOnlyStatement implements Submittable {
  /** Resolves with the result's fields once the server is ready again (transaction rolled
   * back); rejects with the first error. After a rejection the transaction may still be open
   * (the pipeline stops at the error): the caller rolls back. */
  readonly done: Promise<ResultField[]>;
  private resolve!: (fields: ResultField[]) => void;
  private reject!: (err: Error) => void;
  private stage: Stage = "begin";
  private fields: ResultField[] = [];
  private parsers: Array<(text: string) => unknown> = [];
  /** The collector still takes rows. */
  private wantRows = true;
  /** Sync is sent: the pipeline's end is on the wire, nothing more may be asked. */
  private synced = false;
  private settled = false;
  /** The commands this pipeline sends, in order; each CommandComplete moves to the next. */
  private readonly stages: Stage[];

  constructor(
    private readonly sql: string,
    private readonly timeoutMs: number,
    private readonly maxRows: number,
    private readonly maxBytes: number,
    private readonly collector: RowCollector,
    private readonly parserFor: (oid: number) => (text: string) => unknown,
  ) {
    this.stages = [
      "begin",
      // The session's own statement_timeout (set at connection start, restored by every
      // ROLLBACK) already is the usual limit: only a different one costs a statement.
      ...(timeoutMs === SESSION_STATEMENT_TIMEOUT_MS ? [] : (["timeout"] as const)),
      "statement",
      "rollback",
      "unlock",
      "deallocate",
      "done",
    ];
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: Connection): void {
    const wire = connection as unknown as Wire;
    inOneWrite(wire, () => {
      simple(wire, "BEGIN READ ONLY");
      if (this.stages.includes("timeout")) simple(wire, `SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(this.timeoutMs))}`);
      wire.parse({ text: this.sql });
      wire.bind({ values: [] });
      wire.describe({ type: "P" });
      const batch = Math.min(this.maxRows + 1, FIRST_BATCH);
      wire.execute({ rows: batch });
      // When the first batch covers maxRows + 1 no second one can be wanted: finish in this
      // round trip.
      if (batch === this.maxRows + 1) this.finish(wire);
      else wire.flush();
    });
  }

  /** The result's columns, as far as the server described them (also after a failure). */
  get resultFields(): ResultField[] {
    return this.fields;
  }

  handleRowDescription(msg: { fields: ResultField[] }): void {
    this.fields = msg.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID }));
    this.parsers = this.fields.map((f) => this.parserFor(f.dataTypeID));
  }

  handleDataRow(msg: { fields: Array<string | null> }): void {
    if (this.stage !== "statement" || !this.wantRows) return; // rows past the cap: not even parsed
    let row: unknown[];
    try {
      if (msg.fields.length !== this.parsers.length) throw new Error(`the server sent a row of ${msg.fields.length} values for ${this.parsers.length} columns`);
      row = msg.fields.map((text, i) => (text === null ? null : this.parsers[i]!(text)));
    } catch (err) {
      // Thrown here, inside pg's socket handler, it would end the process. A row the server
      // got wrong fails the statement with an error that has no SQLSTATE, so the connection
      // is dropped rather than trusted with the next one.
      this.wantRows = false;
      this.settle(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (!this.collector.push(row)) this.wantRows = false;
  }

  handlePortalSuspended(connection: Connection): void {
    const wire = connection as unknown as Wire;
    if (!this.synced && this.wantRows) {
      inOneWrite(wire, () => {
        wire.execute({ rows: this.nextBatch() });
        wire.flush();
      });
      return;
    }
    // Rows left unfetched: the portal dies with the transaction.
    this.advance();
    if (!this.synced) this.finish(wire);
  }

  handleCommandComplete(_msg: unknown, connection: Connection): void {
    const finishedStatement = this.stage === "statement";
    this.advance();
    if (finishedStatement && !this.synced) this.finish(connection as unknown as Wire);
  }

  handleEmptyQuery(connection: Connection): void {
    this.handleCommandComplete(undefined, connection);
  }

  handleError(err: Error, connection: Connection): void {
    // The server skips everything up to Sync after an error; without one it never answers.
    if (!this.synced) {
      this.synced = true;
      (connection as unknown as Wire).sync();
    }
    this.settle(err);
  }

  handleReadyForQuery(): void {
    this.settle(this.stage === "done" ? null : new Error(`statement pipeline ended early (at ${this.stage})`));
  }

  handleCopyInResponse(connection: Connection): void {
    (connection as unknown as Wire).sendCopyFail("COPY FROM STDIN is not supported");
  }

  handleCopyData(): void {
    // COPY ... TO STDOUT: data is not a result set; drop it.
  }

  private finish(wire: Wire): void {
    inOneWrite(wire, () => {
      simple(wire, "ROLLBACK");
      for (const text of SESSION_CLEANUP) simple(wire, text);
      wire.sync();
    });
    this.synced = true;
  }

  private advance(): void {
    this.stage = this.stages[this.stages.indexOf(this.stage) + 1] ?? "done";
  }

  /** As many rows as could still fit, judged by the average size of those kept so far. */
  private nextBatch(): number {
    const { rows, bytes } = this.collector.kept;
    const remainingRows = this.maxRows + 1 - rows;
    const perRow = rows > 0 ? bytes / rows : 1;
    const byBytes = Math.ceil((this.maxBytes - bytes) / Math.max(perRow, 1)) + 1;
    return Math.max(1, Math.min(remainingRows, byBytes, MAX_BATCH));
  }

  private settle(err: Error | null): void {
    if (this.settled) return;
    this.settled = true;
    if (err) this.reject(err);
    else this.resolve(this.fields);
  }
}

/** Many protocol messages, one TCP write (as node-postgres does for its own queries). Nested
 * corks are counted by Node, so finish() may run inside submit(). */
function inOneWrite(wire: Wire, send: () => void): void {
  wire.stream.cork?.();
  try {
    send();
  } finally {
    wire.stream.uncork?.();
  }
}

/** Parse/Bind/Execute of a parameterless statement, encoded by node-postgres' own serializer. */
function encodeSimple(text: string): Buffer {
  return Buffer.concat([serialize.parse({ text }), serialize.bind({}), serialize.execute()]);
}

/** The statements every pipeline sends, encoded once: three messages each, on every query. */
const ENCODED = new Map(["BEGIN READ ONLY", "ROLLBACK", ...SESSION_CLEANUP].map((text) => [text, encodeSimple(text)]));

function simple(wire: Wire, text: string): void {
  wire.stream.write(ENCODED.get(text) ?? encodeSimple(text));
}
