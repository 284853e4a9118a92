// list_connections and describe_schema: what a client can query, and the schema context the
// /ask agent starts from (ranked and budgeted, so a 1,000-table schema stays affordable).

import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

import { requireScope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { listConnectionsOf } from "../../services/connections.js";
import { describeSchema } from "../../services/schema-context.js";
import { callerOf } from "../caller.js";
import { answering, toolResult } from "../tool-results.js";
import { connectionId } from "./inputs.js";

// Built once: every request builds its own server (stateless), and building schemas costs.
const listConfig = { description: "List your databases: id, name, dialect, database.", annotations: { readOnlyHint: true } };
const describeConfig = {
  description:
    "Schema of a database, one line per table (columns, types, keys, ~rows). Large schemas: the tables most relevant to `question`, then other table names; pass names in `tables` for their full lines.",
  inputSchema: {
    connection_id: connectionId,
    question: z.string().max(2000).optional(),
    tables: z.array(z.string().max(300)).max(50).optional(),
  },
  annotations: { readOnlyHint: true },
};

export function registerConnectionTools(server: McpServer, deps: Deps) {
  server.registerTool(
    "list_connections",
    listConfig,
    (extra) =>
      answering(callerOf(extra), async (caller) => {
        requireScope(caller.grant, "query");
        const allowed = caller.grant.connectionIds;
        const connections = (await listConnectionsOf(deps, caller.userId))
          .filter((c) => allowed === "all" || allowed.has(c.id))
          .map((c) => ({ id: c.id, name: c.name, dialect: c.db_type, database: c.database_name }));
        const text = connections.map((c) => `${c.id}: ${c.name} (${c.dialect}, ${c.database})`).join("\n") || "No connections.";
        return toolResult(text, { connections });
      }),
  );

  server.registerTool(
    "describe_schema",
    describeConfig,
    (args, extra) =>
      answering(callerOf(extra), async (caller) => {
        requireScope(caller.grant, "query", args.connection_id);
        const schema = await describeSchema(deps, caller.userId, args.connection_id, args, "describe_schema with tables: [...] gives them in full");
        return toolResult(`Dialect: ${schema.dialect}\n${schema.text}`, { ...schema });
      }),
  );
}
