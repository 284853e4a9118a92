// list_alerts, table_health and create_monitor: the monitoring verbs behind /api/alerts and
// /api/tables. A credential limited to some connections sees and touches only their tables.

import { z } from "zod";

import { mayReach, requireScope, requireValueReadScope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import { invalidInput } from "../../http/invalid-input.js";
import { NewTableBody } from "../../http/routes/monitoring-schemas.js";
import { storableText, strictInput } from "../../http/schemas.js";
import { listAlertsOf, type AlertListFilter } from "../../services/alerts.js";
import { createMonitoredTableOf, monitoredTableNamesOn } from "../../services/monitored-tables.js";
import { monitoredTableHealth } from "../../services/table-health.js";
import { toolResult } from "../tool-results.js";
import type { ToolTable } from "../tool-table.js";
import { rowId, toolInput } from "./inputs.js";

const STATUSES = ["active", "open", "acknowledged", "muted", "resolving", "resolved"] as const satisfies readonly AlertListFilter[];

const tableNameOf = (t: { schema: string | null; table: string }) => (t.schema ? `${t.schema}.${t.table}` : t.table);

// Built once: every request builds its own server (stateless), and building schemas costs.
const listAlertsConfig = {
  description: "Data-quality alerts on monitored tables. status: active (default: every incident not over), open, acknowledged, muted, resolving, resolved.",
  inputSchema: toolInput({ status: z.enum(STATUSES).optional() }),
  annotations: { readOnlyHint: true },
};
const tableHealthConfig = {
  description: "A monitored table's health: latest result of each check and its open alerts.",
  inputSchema: toolInput({ table_id: rowId }),
  annotations: { readOnlyHint: true },
};
const createMonitorConfig = {
  description:
    "Monitor a table: its checks run on a schedule and open alerts when they fail. checks as in POST /api/tables (default volume and schema_drift), e.g. {kind:'freshness',column:'updated_at'}, {kind:'null_rate',column:'email'}.",
  inputSchema: toolInput({
    connection_id: rowId,
    table: storableText(),
    schema: storableText().optional(),
    interval_seconds: z.number().int().optional(),
    schedule: storableText().optional().describe("cron, instead of interval_seconds"),
    timezone: storableText().optional().describe("IANA zone of schedule; default UTC"),
    checks: z.array(z.record(z.string(), z.unknown())).optional(),
    alert: z.record(z.string(), z.unknown()).optional().describe("{open_after, resolve_after}: failures to open, passes to resolve"),
  }),
};

export function registerMonitoringTools(tools: ToolTable, deps: Deps) {
  tools.register(
    "list_alerts",
    listAlertsConfig,
    async (args, caller) => {
      requireScope(caller.grant, "monitoring:read");
      const reachable = await monitoredTableNamesOn(deps, caller.userId, (connectionId) => mayReach(caller.grant, connectionId));
      const tableOf = new Map(reachable.map((t) => [t.id, { schema: t.schemaName, table: t.tableName, connection_id: t.connectionId }]));
      // Limited before the limit: a key's page is never cut short by alerts it may not see.
      const tableIds = caller.grant.connectionIds === "all" ? null : new Set(tableOf.keys());
      const alerts = await listAlertsOf(deps, caller.userId, { status: args.status ?? "active", tableIds, limit: 200 });
      const visible = alerts.flatMap((a) => {
        const table = tableOf.get(a.table_id);
        return table ? [{ ...a, table: tableNameOf(table), connection_id: table.connection_id }] : [];
      });
      const text =
        visible.map((a) => `#${a.id} ${a.table} (table ${a.table_id}) ${a.check}: ${a.status} since ${a.opened_at ?? "?"}${a.last_detail ? ` - ${a.last_detail}` : ""}`).join("\n") ||
        "No alerts.";
      return toolResult(text, { alerts: visible });
    },
  );

  tools.register(
    "table_health",
    tableHealthConfig,
    async (args, caller) => {
      requireScope(caller.grant, "monitoring:read");
      const health = await monitoredTableHealth(deps, caller.userId, args.table_id);
      requireScope(caller.grant, "monitoring:read", health.table.connection_id);
      const runs = health.latest_runs.map((r) => `${r.check}: ${r.status} at ${r.finished_at} - ${r.message}`);
      const alerts = health.open_alerts.map((a) => `ALERT #${a.id} ${a.check}: ${a.status} since ${a.opened_at ?? "?"}`);
      const text = [`${tableNameOf(health.table)} (connection ${health.table.connection_id})`, ...runs, ...alerts].join("\n");
      return toolResult(runs.length > 0 ? text : `${text}\nNo runs yet.`, { ...health });
    },
  );

  tools.register(
    "create_monitor",
    createMonitorConfig,
    async (args, caller, extra) => {
      requireScope(caller.grant, "monitoring:write", args.connection_id);
      // The same validation as POST /api/tables, so both edges accept the same monitors.
      const parsed = strictInput(NewTableBody).safeParse(args);
      if (!parsed.success) {
        const { detail, errors } = invalidInput(parsed.error, "arguments");
        throw new DomainError("invalid_input", detail, { errors });
      }
      requireValueReadScope(caller.grant, parsed.data.checks);
      // The signal stops its dry runs when the client goes or its key is revoked (route.ts).
      const table = await createMonitoredTableOf(deps, caller.userId, parsed.data, { apiKeyId: caller.grant.apiKeyId, signal: extra.signal });
      return toolResult(`Monitoring ${tableNameOf(table)} as table ${table.id}: ${table.checks.map((c) => c.kind).join(", ")}`, { table });
    },
  );
}
