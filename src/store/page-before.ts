// Lists read newest first by a time, then by id (check runs, alerts): where a page ended, and
// the rows that come after it. The id settles rows of one time: checks of one run often start
// in the same millisecond, and a page ending among them would skip the rest.

import { lt, sql, type AnyColumn, type SQL } from "drizzle-orm";

/** Where a page ended: before this time or, with `id`, before this row in the list's order. */
export interface PageBefore {
  at: Date;
  id?: number | undefined;
}

/** The condition for the rows past `before` in the order (`at` descending, then `id`
 * descending): the next page's. */
export function onNextPage(before: PageBefore, at: AnyColumn, id: AnyColumn): SQL {
  return before.id !== undefined ? sql`(${at}, ${id}) < (${before.at.toISOString()}::timestamptz, ${before.id})` : lt(at, before.at);
}
