// run_query: one read-only statement through the same verb as POST /query (guard, read-only
// transaction, budgets, audit, row and byte caps), with the open alerts on the tables it read.

import { z } from "zod";

import { renderRows } from "../../../agents/tools.js";
import { requireScope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { runQuery } from "../../services/queries.js";
import { toolResult } from "../tool-results.js";
import type { ToolTable } from "../tool-table.js";
import { withHealth } from "../../../agents/health-text.js";
import { storableText } from "../../http/schemas.js";
import { rowId, toolInput } from "./inputs.js";

/** Rows a call returns unless it asks for more: a model rarely needs more, and pays for each. */
export const DEFAULT_MCP_ROWS = 100;

// Built once: every request builds its own server (stateless), and building schemas costs.
// The ceilings are the HTTP route's; QUERY_MAX_ROWS and QUERY_TIMEOUT_MS cap them in the connector.
const config = {
  description: `Run one read-only SQL statement (SELECT, WITH, EXPLAIN, SHOW) on a database; writes are refused. Returns up to max_rows rows (default ${DEFAULT_MCP_ROWS}) and warns of open data-quality alerts on the tables read.`,
  inputSchema: toolInput({
    connection_id: rowId,
    // An empty statement is the guard's to refuse, with its reason, like any other.
    sql: storableText().max(1_000_000),
    max_rows: z.number().int().min(1).max(100_000).optional(),
    timeout_ms: z.number().int().min(100).max(3_600_000).optional(),
  }),
  annotations: { readOnlyHint: true },
};

export function registerQueryTool(tools: ToolTable, deps: Deps) {
  tools.register(
    "run_query",
    config,
    async (args, caller, extra) => {
      requireScope(caller.grant, "query", args.connection_id);
      const maxRows = args.max_rows ?? DEFAULT_MCP_ROWS;
      const { result, health } = await runQuery(deps, caller.userId, caller.sessionId, {
        sql: args.sql,
        grant: caller.grant,
        connectionId: args.connection_id,
        maxRows,
        timeoutMs: args.timeout_ms,
        // Aborted when the client hangs up or cancels the call (route.ts).
        signal: extra.signal,
      });
      const columns = result.columns.map((c) => c.name);
      const text = withHealth(renderRows(columns, result.rows, result.truncated, maxRows), health);
      return toolResult(text, { columns, rows: result.rows, row_count: result.row_count, truncated: result.truncated, health });
    },
  );
}
