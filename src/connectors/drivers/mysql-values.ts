// How MySQL/MariaDB result columns are named and their values made precise. mysql2 is set up
// to hand over big numbers and dates as strings and JSON as text; this finishes the job.

import type { FieldPacket } from "mysql2";

/** mysql2's column type codes (protocol `MYSQL_TYPE_*`). */
const TYPE_NAMES = new Map<number, string>([
  [0, "decimal"], [1, "tinyint"], [2, "smallint"], [3, "int"], [4, "float"], [5, "double"], [6, "null"],
  [7, "timestamp"], [8, "bigint"], [9, "mediumint"], [10, "date"], [11, "time"], [12, "datetime"], [13, "year"],
  [14, "date"], [15, "varchar"], [16, "bit"], [245, "json"], [246, "decimal"], [247, "enum"], [248, "set"],
  [249, "tinyblob"], [250, "mediumblob"], [251, "longblob"], [252, "blob"], [253, "varchar"], [254, "char"],
  [255, "geometry"],
]);
const TEXT_OF_BLOB = new Map([["tinyblob", "tinytext"], ["mediumblob", "mediumtext"], ["longblob", "longtext"], ["blob", "text"]]);
const BINARY_OF_STRING = new Map([["varchar", "varbinary"], ["char", "binary"]]);

const BINARY_CHARSET = 63;
const UNSIGNED_FLAG = 32;
const ENUM_FLAG = 256;
const SET_FLAG = 2048;

export function columnTypeName(field: FieldPacket): string {
  if (field.extendedFormat === "json") return "json";
  if (field.extendedTypeName) return field.extendedTypeName.toLowerCase();
  const flags = typeof field.flags === "number" ? field.flags : 0;
  if (flags & ENUM_FLAG) return "enum";
  if (flags & SET_FLAG) return "set";
  let name = TYPE_NAMES.get(field.columnType ?? -1) ?? `type_${field.columnType}`;
  const binary = field.characterSet === BINARY_CHARSET;
  if (!binary) name = TEXT_OF_BLOB.get(name) ?? name;
  if (binary) name = BINARY_OF_STRING.get(name) ?? name;
  if (flags & UNSIGNED_FLAG && /int$|^decimal$|^float$|^double$/.test(name)) name += " unsigned";
  return name;
}

const DATETIME_TEXT = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)$/;

/** Per column, how to finish a value: DATETIME 'YYYY-MM-DD HH:MM:SS' becomes ISO 8601 without
 * a zone (it has none); TIMESTAMP also gets 'Z', since the session time_zone is '+00:00'.
 * Zero dates ('0000-00-00 ...') stay as the server wrote them. */
export function valueConverters(fields: FieldPacket[]): Array<((value: unknown) => unknown) | null> {
  return fields.map((field) => {
    if (field.columnType === 12) return (v) => isoDatetime(v, "");
    if (field.columnType === 7) return (v) => isoDatetime(v, "Z");
    if (field.columnType === 8) return exactInteger;
    return null;
  });
}

/** BIGINT (COUNT(*), SUM of integers) as a number while it is exact, its text beyond 2^53. */
function exactInteger(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
}

function isoDatetime(value: unknown, zone: string): unknown {
  if (typeof value !== "string" || value.startsWith("0000-00-00")) return value;
  const m = DATETIME_TEXT.exec(value);
  return m ? `${m[1]}T${m[2]}${zone}` : value;
}
