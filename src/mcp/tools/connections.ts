// list_connections and describe_schema: what a client can query, and the schema context the
// /ask agent starts from (ranked and budgeted, so a 1,000-table schema stays affordable).

import { z } from "zod";

import { hasScope, mayReach, requireScope } from "../../auth/grants.js";
import type { Deps } from "../../deps.js";
import { listConnectionsOf } from "../../services/connections.js";
import { describeSchema } from "../../services/schema-context.js";
import type { McpCaller } from "../caller.js";
import { toolResult } from "../tool-results.js";
import type { ToolTable } from "../tool-table.js";
import { storableText } from "../../http/schemas.js";
import { rowId, toolInput } from "./inputs.js";

// Built once: every request builds its own server (stateless), and building schemas costs.
const listConfig = { description: "List your databases: id, name, dialect, database.", inputSchema: toolInput({}), annotations: { readOnlyHint: true } };
const describeConfig = {
  description:
    "Schema of a database, one line per table (columns, types, keys, ~rows). Large schemas: the tables most relevant to `question`, then other table names; pass names in `tables` for their full lines.",
  inputSchema: toolInput({
    connection_id: rowId,
    question: storableText().max(2000).optional(),
    tables: z.array(storableText().max(300)).max(50).optional(),
  }),
  annotations: { readOnlyHint: true },
};

/** The caller's connections its credential may reach: what list_connections lists, as
 * GET /databases does for any key. */
async function reachableConnections(deps: Deps, caller: McpCaller) {
  return (await listConnectionsOf(deps, caller.userId)).filter((c) => mayReach(caller.grant, c.id));
}

/** Of those, the ones it may query (the `query` scope): what the schema resources list. A key
 * without it lists none, rather than failing the resources/list a client sends on connecting. */
export async function queryableConnections(deps: Deps, caller: McpCaller) {
  return hasScope(caller.grant, "query") ? reachableConnections(deps, caller) : [];
}

/** A connection's schema as a client without the /ask agent's tools reads it (describe_schema,
 * the schema resource): the description, and its text after a line naming the dialect. */
export async function schemaForClient(deps: Deps, caller: McpCaller, id: number, request: { question?: string | undefined; tables?: string[] | undefined }) {
  requireScope(caller.grant, "query", id);
  const schema = await describeSchema(deps, caller.userId, id, request, "describe_schema with tables: [...] gives them in full");
  return { schema, text: `Dialect: ${schema.dialect}\n${schema.text}` };
}

export function registerConnectionTools(tools: ToolTable, deps: Deps) {
  tools.register(
    "list_connections",
    listConfig,
    async (_args, caller) => {
      const connections = (await reachableConnections(deps, caller)).map((c) => ({ id: c.id, name: c.name, dialect: c.db_type, database: c.database_name }));
      const text = connections.map((c) => `${c.id}: ${c.name} (${c.dialect}, ${c.database})`).join("\n") || "No connections.";
      return toolResult(text, { connections });
    },
  );

  tools.register(
    "describe_schema",
    describeConfig,
    async (args, caller) => {
      const { schema, text } = await schemaForClient(deps, caller, args.connection_id, args);
      return toolResult(text, { ...schema });
    },
  );
}
