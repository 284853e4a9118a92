// Health-aware results as a model reads them: one warning line per open alert on a table read.

import type { TableAlert } from "./table-health.js";

export function healthLines(health: readonly TableAlert[]): string {
  return health
    .map((a) => `WARNING: ${a.table} has an alert (${a.status}): ${a.check} failing since ${a.since ?? "?"}${a.detail ? ` (${a.detail})` : ""}`)
    .join("\n");
}

/** `text`, then the warnings (if any) on lines of their own. */
export const withHealth = (text: string, health: readonly TableAlert[]) => (health.length > 0 ? `${text}\n${healthLines(health)}` : text);
