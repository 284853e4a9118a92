// A metric series' history held in memory, served the way the store serves the baseline cache
// (see HistoryLoader in src/monitoring/baseline-cache.ts): for the cache's tests and benches.

import type { MetricPoint } from "../../src/monitoring/baselines.js";

/** Loads from `points` (oldest first, read at each call, so points pushed later are seen): all
 * of them for `since` null, else those at or after `since`, found from the end since callers
 * ask for the few newest. */
export const historyOf =
  (points: MetricPoint[]) =>
  (since: number | null): MetricPoint[] => {
    if (since === null) return points;
    let from = points.length;
    while (from > 0 && (points[from - 1]!.at as number) >= since) from--;
    return points.slice(from);
  };
