// What a check gets to run with and what it gives back. Checks reach the monitored database
// only through `ctx.query` (the guarded connector under the monitoring budget).

import type { GuardedConnector } from "../../connectors/guarded.js";
import type { Cell, QueryResult, TableSchema } from "../../connectors/types.js";
import type { BaselineJudgement, BaselineOptions } from "../baselines.js";
import type { ColumnSnapshot } from "../../store/column-types.js";
import { cutText } from "../../text-cut.js";

export type CheckStatus = "pass" | "fail" | "error" | "skipped";

export interface CheckResult {
  status: CheckStatus;
  value: number | null;
  expected?: number | null | undefined;
  lower?: number | null | undefined;
  upper?: number | null | undefined;
  /** Judged anomalous by a baseline: the point stays out of future training sets. */
  anomalous?: boolean | undefined;
  message: string;
  details?: Record<string, unknown> | undefined;
}

export interface CheckContext {
  connector: GuardedConnector;
  /** The monitored table as introspected (its real schema, name and columns). */
  table: TableSchema;
  /** Epoch ms of this run. */
  now: number;
  /** One statement through the guard, under the monitoring budget and timeout. */
  query(sql: string, maxRows?: number): Promise<QueryResult>;
  /** Judges this check's new value against the baseline learnt from its past values (a
   * training reused for a few runs, see baseline-cache.ts). */
  judgeBaseline(point: { at: number; value: number }, options: BaselineOptions): Promise<BaselineJudgement>;
  /** Replica lag in seconds as last probed (0 on a primary). */
  replicationLagSeconds(): Promise<number>;
}

/** Schema drift needs no query of its own: the connector's introspection. */
export interface DriftContext {
  /** The table's columns from an introspection no older than half the table's interval;
   * null when the table is gone. */
  freshColumns(): Promise<ColumnSnapshot[] | null>;
  /** Columns accepted as the table's shape; null before the first run (or after a resolve). */
  acceptedColumns: ColumnSnapshot[] | null;
  acceptColumns(columns: ColumnSnapshot[]): Promise<boolean>;
}

/** Characters of a cell a message shows: enough to recognise the value, however large it is. */
const PRINTED_CELL_CHARS = 200;

/** A cell as a message shows it (JSON), cut to PRINTED_CELL_CHARS. */
export const printedCell = (cell: Cell | undefined): string => cutText(JSON.stringify(cell) ?? "undefined", PRINTED_CELL_CHARS);

/** A decimal as the drivers write a bigint or a numeric. Not JavaScript's Number() reading of
 * text, which takes "0x10" for 16 and " 5 " for 5: text a statement returns is not a number. */
/** Linear in the text's length: the digits before a point can be read one way only. Its first
 * form (`\d+\.?\d*`) split a run of digits every way before failing on what followed it, and a
 * check's cell of 60,000 digits and an `x` held the event loop for 7 s. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Longer than any number a double holds to the digit (DECIMAL(65,30) is 67 characters). */
const MAX_NUMBER_CHARS = 400;

/** A cell read as a number: integers and decimals arrive as numbers or exact strings. */
export function numberOf(cell: Cell | undefined): number | null {
  if (cell === null || cell === undefined) return null;
  if (typeof cell === "number") return cell;
  if (typeof cell === "boolean") return cell ? 1 : 0;
  if (typeof cell === "string" && cell.length <= MAX_NUMBER_CHARS && DECIMAL.test(cell)) {
    const n = Number(cell);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** The first row of a result, by column name. */
export function firstRow(result: QueryResult): Record<string, Cell> | null {
  const row = result.rows[0];
  if (!row) return null;
  return Object.fromEntries(result.columns.map((c, i) => [c.name, row[i] ?? null]));
}
