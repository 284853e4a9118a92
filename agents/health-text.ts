// Health-aware results as a model reads them: one warning line per open alert on a table read,
// for MCP clients (src/mcp/tools) and the /ask agent's own model alike.

/** What a warning says of one open alert (services/table-health.ts TableAlert has it all). */
export interface HealthWarning {
  table: string;
  status: string;
  check: string;
  since: string | null;
  detail: string | null;
}

export function healthLines(health: readonly HealthWarning[]): string {
  return health
    .map((a) => `WARNING: ${a.table} has an alert (${a.status}): ${a.check} failing since ${a.since ?? "?"}${a.detail ? ` (${a.detail})` : ""}`)
    .join("\n");
}

/** `text`, then the warnings (if any) on lines of their own. */
export const withHealth = (text: string, health: readonly HealthWarning[]) => (health.length > 0 ? `${text}\n${healthLines(health)}` : text);
