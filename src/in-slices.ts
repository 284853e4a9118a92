// Work over something as large as a user's schema, in slices: a catalog is the database's to
// size (up to SCHEMA_MAX_BYTES, 32 MiB by default), and one pass over it at once held the event
// loop for seconds (indexing 3,000 tables of 60 columns for /ask: 2.9 s), stalling every other
// request of every user. The work is no cheaper in slices, but other requests are served
// between them.

import { setImmediate as nextTurn } from "node:timers/promises";

/** How long one slice may hold the event loop. */
export const SLICE_MS = 10;

/** Calls `step` on each item in order, giving the event loop a turn whenever SLICE_MS have passed
 * since the last one. One step should be small (a table, a term): a slice ends only between
 * steps. */
export async function forEachInSlices<T>(items: Iterable<T>, step: (item: T, index: number) => void): Promise<void> {
  let sliceStart = performance.now();
  let index = 0;
  for (const item of items) {
    step(item, index++);
    if (performance.now() - sliceStart >= SLICE_MS) {
      await nextTurn();
      sliceStart = performance.now();
    }
  }
}
