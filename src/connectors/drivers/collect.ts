// The one way a driver turns a stream of database rows into a capped QueryResult: it keeps
// at most `maxRows` rows and about `maxBytes` of JSON, and says when to stop fetching.

import { DomainError } from "../../errors.js";
import { cellSize, toCell } from "../cells.js";
import type { Cell, ColumnInfo, QueryLimits, QueryResult } from "../types.js";

/** Brackets and commas around one row in the JSON answer. */
const ROW_OVERHEAD = 3;

export class RowCollector {
  private readonly rows: Cell[][] = [];
  private bytes = 0;
  private truncated = false;
  private firstRowBytes = 0;
  /** Set when the driver cut the result off on the wire (see wire-limit.ts) before any row fit. */
  private cutOffAtWireBytes = 0;

  /** `reservedBytes`: what the answer holds besides its rows (SQLite's column names and declared
   * types, which have no length limit), counted against `maxBytes` first. */
  constructor(
    private readonly limits: Pick<QueryLimits, "maxRows" | "maxBytes">,
    private readonly reservedBytes = 0,
  ) {
    this.bytes = reservedBytes;
  }

  /** Offers the next row; answers whether more rows are wanted. After `false`, further rows
   * are ignored, so a driver may drain what is already in flight without checking. The row is
   * taken over and its values turned into cells in place: one array per row, not two. */
  push(row: unknown[]): boolean {
    if (this.truncated) return false;
    if (this.rows.length >= this.limits.maxRows) {
      // The row past the cap exists: that is all we fetched it for.
      this.truncated = true;
      return false;
    }
    let size = ROW_OVERHEAD;
    for (let i = 0; i < row.length; i++) {
      const cell = toCell(row[i]);
      row[i] = cell;
      size += cellSize(cell) + 1;
    }
    const cells = row as Cell[];
    if (this.bytes + size > this.limits.maxBytes) {
      this.truncated = true;
      if (this.rows.length === 0) this.firstRowBytes = size;
      return false;
    }
    this.rows.push(cells);
    this.bytes += size;
    // Even at the cap, one more row is wanted: its existence is what `truncated` reports.
    return true;
  }

  /** The driver stopped receiving: the row in flight was too large to even receive. The rows
   * kept stay the answer, marked truncated; with none kept, the answer is result_too_large. */
  cutOff(wireBytes: number): void {
    if (this.rows.length === 0 && this.firstRowBytes === 0) this.cutOffAtWireBytes = wireBytes;
    this.truncated = true;
  }

  /** Rows kept so far and their estimated JSON size, for drivers that size their fetches. */
  get kept(): { rows: number; bytes: number } {
    return { rows: this.rows.length, bytes: this.bytes };
  }

  /** The capped result; `startedAt` is a `performance.now()` reading. A first row that alone exceeds the byte cap is an error rather than
   * an empty "truncated" answer, which would read as "no data". */
  result(columns: ColumnInfo[], startedAt: number): QueryResult {
    if (this.firstRowBytes > 0) {
      const what =
        this.reservedBytes > 0
          ? `The column names and types (about ${this.reservedBytes} bytes) and the first row (about ${this.firstRowBytes}) are`
          : `The first row alone is about ${this.firstRowBytes} bytes,`;
      throw new DomainError("result_too_large", `${what} over the ${this.limits.maxBytes}-byte result limit; select fewer or narrower columns`, { max_bytes: this.limits.maxBytes });
    }
    if (this.cutOffAtWireBytes > 0) {
      throw new DomainError(
        "result_too_large",
        `The first row is over the ${this.limits.maxBytes}-byte result limit: Pulse stopped the statement after receiving ${this.cutOffAtWireBytes} bytes; select fewer or narrower columns`,
        { max_bytes: this.limits.maxBytes },
      );
    }
    return {
      columns,
      rows: this.rows,
      row_count: this.rows.length,
      truncated: this.truncated,
      execution_time_ms: Math.round((performance.now() - startedAt) * 100) / 100,
    };
  }
}
