// MySQL, MariaDB and SQLite read a carriage return as a space: between tokens it separates them,
// and it does not end a `--` or `#` comment, which runs to the next line feed. sql-parser-cst's
// grammars end a comment at it and then refuse it as a syntax error, so SQL saved with bare
// carriage returns (old Mac line endings, some editors' copy and paste) could not run at all.
// Each is read as the space the server reads; one character for one, so the tree's ranges and
// error positions still point into the statement as it was sent.

/** `sql` with each carriage return a space, as MySQL, MariaDB and SQLite read it. */
export function carriageReturnsAsSpaces(sql: string): string {
  return sql.includes("\r") ? sql.replaceAll("\r", " ") : sql;
}
