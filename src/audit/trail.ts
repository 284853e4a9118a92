// The audit trail's writer: the guarded connectors hand it every statement they are asked to
// run, it keeps them in memory and writes them to the metadata store in batches (COPY) off
// the request's path. The buffer is bounded: when the store stops taking records and the
// buffer is full, new statements are refused (503 audit_unavailable) rather than run unrecorded.

import { createHash, randomUUID } from "node:crypto";

import type { AuditConfig } from "../config.js";
import type { StatementRecord, StatementRecorder } from "../connectors/statement-recorder.js";
import { DomainError, SqlRefusedError } from "../errors.js";
import type { Logger } from "../logger.js";
import { appendAuditRecords, lastAuditBatch, registerAuditWriter, type NewAuditRecord } from "../store/audit.js";
import type { Store } from "../store/client.js";
import { sqlStateOf } from "../store/unavailable.js";
import { prefixOf } from "../text-cut.js";

/** Characters of a statement kept; a longer one keeps its length and SHA-256 besides. */
export const AUDIT_SQL_CHARS = 4096;
/** A batch is written this often (by default), or as soon as BATCH_ROWS records wait. */
const FLUSH_EVERY_MS = 200;
/** How old this writer's row in audit_writes may be when a write begins before it is made
 * recent again: far less than the shortest retention (a day), past which pruneAuditRecords
 * deletes the rows of writers that wrote nothing (their process ended). A live writer idle that
 * long lost its row, so its next batch's mark was an INSERT, which lastAuditBatch does not wait
 * for: a batch whose answer was lost read as not written, and was written twice. */
const MARK_REFRESH_MS = 3_600_000;
const BATCH_ROWS = 500;
const WARN_EVERY_MS = 10_000;
/** Credentials whose last budget refusal's second is remembered at most (then forgotten together). */
const MAX_REFUSING_USERS = 10_000;
/** Budget refusals recorded per user and second at most, however many credentials (a login and
 * its API keys) send them: with a record a second per credential, a user's hundred keys made a
 * hundred records a second. */
export const MAX_BUDGET_REFUSALS_PER_USER_SECOND = 5;
/** Writes spent finding the records a store refuses as data, per batch: a few bad records
 * cost about 2 log2(BATCH_ROWS) each; more than this many means the store, not the records. */
const MAX_WRITES_PER_BATCH = 64;

export interface AuditTrail extends StatementRecorder {
  /** Records not written yet. */
  readonly pending: number;
  /** Writes what waits now (and what arrives meanwhile); false when the store failed. */
  flush(): Promise<boolean>;
  /** Stops the timer and writes what is left, trying once; what cannot be written is logged
   * as lost. */
  close(): Promise<void>;
}

type Outcome = Pick<NewAuditRecord, "outcome" | "errorCode" | "rule">;

/** A statement waiting to be written: its record with the outcome of its error, not the error
 * (whose stack's frames hold what the request held, its body included: a refused statement of
 * a million characters kept 2 MB while the store was away). One longer than AUDIT_SQL_CHARS is
 * kept cut, with what its record says about the whole. */
type Pending = Omit<StatementRecord, "error"> & { outcome: Outcome; whole: { length: number; sha256: string } | undefined };

export function createAuditTrail(
  store: Pick<Store, "copyRows" | "db">,
  settings: AuditConfig,
  logger: Logger,
  /** How often what waits is written unasked (tests that must see records wait set it long). */
  { flushEveryMs = FLUSH_EVERY_MS }: { flushEveryMs?: number } = {},
): AuditTrail {
  let buffer: Pending[] = [];
  /** This process's name for the batches it marks (appendAuditRecords). */
  const writer = randomUUID();
  /** The last batch whose write failed other than on its data: it may have committed all the
   * same (the reply lost with the connection). Its records stay in the buffer until the store
   * says whether it took them. */
  let inDoubt: { batch: string; records: Set<Pending> } | null = null;
  /** When this writer's row was last made recent (registered, or marked by a batch). */
  let markedAt = Number.NEGATIVE_INFINITY;
  /** The second of each credential's last budget refusal recorded, by user and login or API key
   * (see `repeatsBudgetRefusal`). */
  const budgetRefusedAt = new Map<string, number>();
  /** Each user's budget refusals recorded in its last second with one. */
  const userRefusals = new Map<number, { second: number; count: number }>();
  let flushing: Promise<boolean> | null = null;
  let warnedAt = Number.NEGATIVE_INFINITY;
  const warn = (fields: Record<string, unknown>, message: string) => {
    const now = Date.now();
    if (now - warnedAt < WARN_EVERY_MS) return;
    warnedAt = now;
    logger.warn(fields, message);
  };

  const drop = (record: NewAuditRecord, err: unknown) =>
    logger.error({ err, owner_id: record.ownerId, connection_id: record.connectionId, at: record.at }, "an audit record was refused by the store and dropped");

  /** Writes `batch`; on a refusal as data, finds the records at fault by halves and drops them,
   * but only when the store took others of the batch: a store that refuses every record (a
   * constraint or trigger an operator added, a column changed) is a store failure, and the
   * records wait. `written` collects what went, so that a failure midway loses and repeats
   * nothing; `doubt` hears of the write that failed otherwise than on its data. */
  async function writeBatch(batch: NewAuditRecord[], written: Set<NewAuditRecord>, doubt: (batch: string, part: NewAuditRecord[]) => void): Promise<void> {
    const refused: [NewAuditRecord, unknown][] = [];
    let writes = 0;
    const bisect = async (part: NewAuditRecord[]): Promise<void> => {
      if (++writes > MAX_WRITES_PER_BATCH) throw new Error("the metadata store refuses most of the audit trail's records as data");
      const mark = { writer, batch: randomUUID() };
      try {
        await appendAuditRecords(store, part, mark);
        for (const record of part) written.add(record);
      } catch (err) {
        // Anything but a record's own data (the store away, read-only, full, a permission
        // revoked): the records wait, and statements are refused once the buffer is full.
        if (!refusesData(err)) {
          doubt(mark.batch, part);
          throw err;
        }
        if (part.length === 1) return void refused.push([part[0]!, err]);
        const half = Math.ceil(part.length / 2);
        await bisect(part.slice(0, half));
        await bisect(part.slice(half));
      }
    };
    await bisect(batch);
    if (refused.length === 0) return;
    if (written.size === 0) throw refused[0]![1];
    for (const [record, err] of refused) {
      drop(record, err);
      written.add(record);
    }
  }

  /** Writes what waits, then goes on while full batches wait; with `everything`, until none
   * does. A writer that went on with the few records arriving during each write would write
   * dozens of tiny batches a second, each a commit the store pays for. */
  async function write(everything: boolean): Promise<boolean> {
    if (buffer.length === 0) return true;
    try {
      if (Date.now() - markedAt >= MARK_REFRESH_MS) {
        await registerAuditWriter(store.db, writer);
        markedAt = Date.now();
      }
      await settleDoubt();
    } catch (err) {
      warn({ err, pending: buffer.length, max: settings.bufferRecords }, "writing the audit trail failed; records wait in memory");
      return false;
    }
    for (let first = true; buffer.length > 0 && (first || everything || buffer.length >= BATCH_ROWS); first = false) {
      const pending = buffer.slice(0, BATCH_ROWS);
      const rows = pending.map(auditRow);
      const written = new Set<NewAuditRecord>();
      const doubt = (batch: string, part: NewAuditRecord[]) => {
        const inPart = new Set(part);
        inDoubt = { batch, records: new Set(pending.filter((_, i) => inPart.has(rows[i]!))) };
      };
      try {
        await writeBatch(rows, written, doubt);
      } catch (err) {
        if (written.size > 0) buffer = buffer.filter((_, i) => i >= pending.length || !written.has(rows[i]!));
        warn({ err, pending: buffer.length, max: settings.bufferRecords }, "writing the audit trail failed; records wait in memory");
        return false;
      }
      buffer.splice(0, pending.length);
      markedAt = Date.now();
    }
    return true;
  }

  /** Finds out whether the batch in doubt committed; if it did, its records are done. */
  async function settleDoubt(): Promise<void> {
    if (!inDoubt) return;
    const { batch, records } = inDoubt;
    if ((await lastAuditBatch(store.db, writer)) === batch) buffer = buffer.filter((record) => !records.has(record));
    inDoubt = null;
  }

  /** One writer at a time; a write asked for while one runs is that one. */
  const startWriting = (everything: boolean): Promise<boolean> => {
    if (flushing) return flushing;
    const current = write(everything).finally(() => {
      flushing = null;
    });
    flushing = current;
    return current;
  };

  const flush = async (): Promise<boolean> => {
    while (flushing) await flushing;
    return startWriting(true);
  };

  /** A credential's budget refusals are recorded once a second (each key's apart from its
   * user's login, so one flooding does not hide the other's), a user's at most
   * MAX_BUDGET_REFUSALS_PER_USER_SECOND. Nothing of them ran or was parsed, and each costs about
   * what a 429 does, so a flood of them would add records as fast as the server answers
   * (millions an hour), where the budget bounds everything else the trail keeps. The others are
   * counted in /metrics (pulse_statements_total, outcome budget_exceeded). */
  const repeatsBudgetRefusal = (statement: StatementRecord): boolean => {
    if (!(statement.error instanceof DomainError) || statement.error.code !== "budget_exceeded") return false;
    const second = Math.floor(statement.startedAt / 1000);
    const who = `${statement.ownerId}:${statement.apiKeyId ?? "login"}`;
    if (budgetRefusedAt.get(who) === second) return true;
    const user = userRefusals.get(statement.ownerId);
    const count = user?.second === second ? user.count : 0;
    if (count >= MAX_BUDGET_REFUSALS_PER_USER_SECOND) return true;
    if (budgetRefusedAt.size >= MAX_REFUSING_USERS) budgetRefusedAt.clear();
    if (userRefusals.size >= MAX_REFUSING_USERS) userRefusals.clear();
    budgetRefusedAt.set(who, second);
    userRefusals.set(statement.ownerId, { second, count: count + 1 });
    return false;
  };

  const timer = setInterval(() => void startWriting(false), flushEveryMs);
  timer.unref();

  return {
    get pending() {
      return buffer.length;
    },
    admit() {
      if (buffer.length < settings.bufferRecords) return;
      warn({ pending: buffer.length }, "audit trail full: refusing statements until the metadata store takes its records");
      throw new DomainError(
        "audit_unavailable",
        "The audit trail cannot record more statements (Pulse's metadata store is not taking its records), so none runs; retry shortly",
      );
    },
    record(statement) {
      if (repeatsBudgetRefusal(statement)) return;
      // Admitted statements are always kept, so the buffer may pass its bound by the
      // statements that were running when it filled (bounded by the connection budgets).
      // Only what must not be held whole is reduced here; the rest of the record is made when
      // it is written.
      buffer.push(pendingOf(statement));
      if (buffer.length >= BATCH_ROWS) void startWriting(false);
    },
    flush,
    async close() {
      clearInterval(timer);
      if (await flush()) return;
      logger.error({ lost: buffer.length }, "audit records could not be written before shutdown and are lost");
      buffer = [];
    },
  };
}

/** Field by field, not by rest and spread (`{ error, ...rest }`): V8 copies those through a
 * generic path, and this ran for every statement at 1.2% of the server's CPU under /query. */
function pendingOf(s: StatementRecord): Pending {
  const long = s.sql.length > AUDIT_SQL_CHARS;
  return {
    connectionId: s.connectionId,
    ownerId: s.ownerId,
    source: s.source,
    apiKeyId: s.apiKeyId,
    sql: long ? prefixOf(s.sql, AUDIT_SQL_CHARS) : s.sql,
    startedAt: s.startedAt,
    durationMs: s.durationMs,
    rowCount: s.rowCount,
    outcome: outcomeOf(s.error),
    whole: long ? { length: s.sql.length, sha256: createHash("sha256").update(s.sql).digest("hex") } : undefined,
  };
}

function auditRow(s: Pending): NewAuditRecord {
  return {
    at: new Date(s.startedAt),
    ownerId: s.ownerId,
    connectionId: s.connectionId,
    source: s.source,
    apiKeyId: s.apiKeyId,
    // PostgreSQL text cannot hold NUL: a statement carrying one must not poison its batch.
    sql: s.sql.includes("\0") ? s.sql.replaceAll("\0", "\uFFFD") : s.sql,
    sqlLength: s.whole?.length ?? s.sql.length,
    sqlSha256: s.whole?.sha256 ?? null,
    rowCount: s.rowCount,
    durationMs: Math.round(s.durationMs * 100) / 100,
    outcome: s.outcome.outcome,
    errorCode: s.outcome.errorCode,
    rule: s.outcome.rule,
  };
}

/** The outcome of every statement that succeeded: one object, not one each. */
const SUCCEEDED: Outcome = Object.freeze({ outcome: "ok", errorCode: null, rule: null });

function outcomeOf(error: unknown): Outcome {
  if (error === undefined) return SUCCEEDED;
  if (error instanceof SqlRefusedError) return { outcome: "refused", errorCode: error.code, rule: error.rule };
  if (!(error instanceof DomainError)) return { outcome: "error", errorCode: "internal", rule: null };
  const outcome = error.code === "budget_exceeded" ? "budget_exceeded" : error.code === "query_timeout" ? "timeout" : "error";
  return { outcome, errorCode: error.code, rule: null };
}

/** A data exception or an integrity violation (SQLSTATE classes 22 and 23): the record, not the
 * store, is at fault. */
const refusesData = (err: unknown) => /^2[23]/.test(sqlStateOf(err) ?? "");
