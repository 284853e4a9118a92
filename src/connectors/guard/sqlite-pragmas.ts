// The SQLite PRAGMAs Pulse lets through, in both their forms: the statement (`PRAGMA table_info(t)`)
// and the table-valued function (`SELECT * FROM pragma_table_info('t')`).

/** Schema-describing PRAGMAs. database_list is left out: it shows server file paths and is
 * useless when ATTACH is refused; integrity_check and friends can scan the whole file. */
export const READ_ONLY_PRAGMAS: ReadonlySet<string> = new Set([
  "table_info",
  "table_xinfo",
  "table_list",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
]);

export const pragmaNotAllowed = (name: string) =>
  `PRAGMA ${name || "(unnamed)"} is not on the read-only allowlist (${[...READ_ONLY_PRAGMAS].join(", ")}).`;

/** The PRAGMA a table-valued function name stands for (`pragma_database_list` -> `database_list`). */
export function tableValuedPragma(name: string): string | undefined {
  const lower = name.toLowerCase();
  return lower.startsWith("pragma_") ? lower.slice("pragma_".length) : undefined;
}
