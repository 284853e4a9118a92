// MySQL and MariaDB read a carriage return, form feed or vertical tab as a space, SQLite a
// carriage return or form feed: between tokens each separates them, and none ends a `--` or
// `#` comment, which runs to the next line feed. sql-parser-cst's grammars end a comment at a
// carriage return and then refuse it, and refuse the others outright, so SQL saved with bare
// carriage returns (old Mac line endings, some editors' copy and paste) could not run at all.
// Each is read as the space the server reads; one character for one, so the tree's ranges and
// error positions still point into the statement as it was sent.

const READ_AS_SPACE = { mysql: /[\r\f\v]/g, sqlite: /[\r\f]/g } as const;

/** `sql` with each character the server reads as a space made one. */
export function serverWhitespaceAsSpaces(dialect: keyof typeof READ_AS_SPACE, sql: string): string {
  return sql.replace(READ_AS_SPACE[dialect], " ");
}
