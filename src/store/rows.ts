// What a raw statement (db.execute) answers, read the same on both drivers: node-postgres and
// PGlite both answer `{ rows }`.

/** The rows of a raw statement. */
export const rowsOf = <T>(result: unknown): T[] => (result as { rows: T[] }).rows;
