// What a raw statement (db.execute) answers, read the same on both drivers: node-postgres and
// PGlite both answer `{ rows }`.

/** The `n` of a statement answering one row `SELECT count(*)::int AS n`. */
export const countOf = (result: unknown): number => (result as { rows: { n: number }[] }).rows[0]?.n ?? 0;

/** The rows of a raw statement. */
export const rowsOf = <T>(result: unknown): T[] => (result as { rows: T[] }).rows;
