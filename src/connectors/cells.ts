// Turns driver values into JSON-safe cells without losing precision: integers beyond 2^53
// and decimals stay strings, dates become ISO 8601, binary is marked and base64-encoded.

import type { Cell } from "./types.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

export function toCell(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      // NaN and the infinities have no JSON form; keep what the database said.
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value <= MAX_SAFE && value >= MIN_SAFE ? Number(value) : value.toString();
    case "object":
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Uint8Array) return { $binary: Buffer.from(value).toString("base64") };
      // JSON columns, arrays, intervals and the like: a JSON text keeps every detail.
      return JSON.stringify(value, (_key, v: unknown) =>
        typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? { $binary: Buffer.from(v).toString("base64") } : v,
      );
    default:
      return String(value);
  }
}

/** Characters JSON writes in more than two bytes: control characters and lone surrogates as
 * \uXXXX (six), and the rest of the BMP past U+07FF as three bytes of UTF-8. */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const WIDE_IN_JSON = /[\u0000-\u001f\u0800-\uffff]/;

/** Cheap upper-bound estimate of a cell's JSON size, used to enforce the byte cap without
 * serialising every row twice: two bytes a character, measured exactly only for text with
 * characters JSON writes wider (a string of control characters came out three times over the
 * cap). */
export function cellSize(cell: Cell): number {
  if (cell === null) return 4;
  if (typeof cell === "string") {
    const estimate = cell.length * 2 + 2;
    return WIDE_IN_JSON.test(cell) ? Math.max(estimate, Buffer.byteLength(JSON.stringify(cell))) : estimate;
  }
  if (typeof cell === "number") return 24;
  if (typeof cell === "boolean") return 5;
  return cell.$binary.length + 14;
}
