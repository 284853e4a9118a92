// How PostgreSQL text-format values become precise JS values, and what their type OIDs are
// called. Per pool (never pg's global `types`), so other users of `pg` in the process keep
// their own parsing.

import pg from "pg";
import type { CustomTypesConfig } from "pg";

type TextParser = (text: string) => unknown;

const identity: TextParser = (text) => text;

/** 'YYYY-MM-DD HH:MM:SS[.ffffff]' (DateStyle ISO) -> 'YYYY-MM-DDTHH:MM:SS[.ffffff]', the wall-clock
 * value untouched: a JS Date would shift it into the process's zone and drop microseconds. */
const ISO_TIMESTAMP = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)$/;
const timestamp: TextParser = (text) => text.replace(ISO_TIMESTAMP, "$1T$2");

/** timestamptz arrives in the session's TimeZone (UTC, set at connection start): '+00' becomes
 * 'Z'; another offset (a statement may change TimeZone for itself) becomes '+HH:MM'. */
const ISO_TIMESTAMPTZ = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::(\d\d))?(?::(\d\d))?$/;
const timestamptz: TextParser = (text) => {
  const m = ISO_TIMESTAMPTZ.exec(text);
  if (!m) return text; // infinity, BC dates: keep what the server said
  const [, date, time, hours, minutes = "00", seconds] = m;
  if (hours === "+00" && minutes === "00" && !seconds) return `${date}T${time}Z`;
  return `${date}T${time}${hours}:${minutes}${seconds ? `:${seconds}` : ""}`;
};

const byteaParser = pg.types.getTypeParser(17, "text") as TextParser;

/** bigint (count(*), sum of integers) as a number while it is exact, its text beyond 2^53. */
const int8: TextParser = (text) => {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
};

/** Types whose text form is worth converting; everything else (numeric, json, arrays,
 * intervals, uuid, ...) stays the server's text, which is exact. */
const PARSERS = new Map<number, TextParser>([
  [16, (text) => text === "t"], // boolean
  [20, int8], // bigint
  [17, byteaParser], // bytea -> Buffer
  [21, Number], // smallint
  [23, Number], // integer
  [26, Number], // oid
  [700, Number], // real
  [701, Number], // double precision
  [1114, timestamp],
  [1184, timestamptz],
]);

export function textParserFor(oid: number): TextParser {
  return PARSERS.get(oid) ?? identity;
}

/** For `client.query()` calls of the driver itself (probe, introspection). */
export const clientTypes: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    format === "binary" ? pg.types.getTypeParser(oid, "binary") : textParserFor(oid)) as CustomTypesConfig["getTypeParser"],
};

/** format_type(oid, NULL) of the built-in types, so common results need no catalog lookup. */
export const BUILTIN_TYPE_NAMES = new Map<number, string>([
  [16, "boolean"], [17, "bytea"], [18, '"char"'], [19, "name"], [20, "bigint"], [21, "smallint"],
  [23, "integer"], [24, "regproc"], [25, "text"], [26, "oid"], [114, "json"], [142, "xml"],
  [600, "point"], [603, "box"], [628, "line"], [650, "cidr"], [700, "real"], [701, "double precision"],
  [705, "unknown"], [718, "circle"], [774, "macaddr8"], [790, "money"], [829, "macaddr"], [869, "inet"],
  [1042, "character"], [1043, "character varying"], [1082, "date"], [1083, "time without time zone"],
  [1114, "timestamp without time zone"], [1184, "timestamp with time zone"], [1186, "interval"],
  [1266, "time with time zone"], [1560, "bit"], [1562, "bit varying"], [1700, "numeric"], [2249, "record"],
  [2278, "void"], [2950, "uuid"], [3220, "pg_lsn"], [3614, "tsvector"], [3615, "tsquery"], [3802, "jsonb"],
  [4072, "jsonpath"], [199, "json[]"], [1000, "boolean[]"], [1001, "bytea[]"], [1005, "smallint[]"],
  [1007, "integer[]"], [1009, "text[]"], [1015, "character varying[]"], [1016, "bigint[]"], [1021, "real[]"],
  [1022, "double precision[]"], [1115, "timestamp without time zone[]"], [1182, "date[]"],
  [1185, "timestamp with time zone[]"], [1231, "numeric[]"], [2951, "uuid[]"], [3807, "jsonb[]"],
]);
