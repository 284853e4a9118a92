// Each connection's schema as an MCP resource, `pulse://connections/{id}/schema`: what
// describe_schema gives without a question, for clients that attach context as resources
// rather than call a tool. Listed and read under the same rules as the tools (the `query`
// scope, a key's connections, the caller's own connections only).

import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";

import { mayReach, requireScope } from "../auth/grants.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import { listConnectionsOf } from "../services/connections.js";
import { describeSchema } from "../services/schema-context.js";
import { isStoreUnavailable, storeUnavailable } from "../store/unavailable.js";
import { callerOf, type McpCaller } from "./caller.js";

const schemaUri = (connectionId: number) => `pulse://connections/${connectionId}/schema`;
const MAX_ID = 2_147_483_647;

/** Runs a resource's body for `caller`. A resource has no `isError` result as a tool has, so a
 * failure is a JSON-RPC error: the reason for what the caller can fix, a generic message with
 * the request id for the rest (a driver's message never reaches a client). */
async function reading<T>(caller: McpCaller, run: (caller: McpCaller) => Promise<T>): Promise<T> {
  try {
    return await run(caller);
  } catch (err) {
    if (err instanceof McpError) throw err;
    if (err instanceof DomainError) throw new McpError(ErrorCode.InvalidParams, `${err.code}: ${err.message}`);
    if (isStoreUnavailable(err)) {
      caller.logger.warn({ err }, "metadata store unavailable");
      throw new McpError(ErrorCode.InternalError, storeUnavailable().message);
    }
    caller.logger.error({ err }, "unhandled error in an MCP resource");
    throw new McpError(ErrorCode.InternalError, `Internal server error (request ${caller.requestId})`);
  }
}

export function registerSchemaResources(server: McpServer, deps: Deps) {
  const template = new ResourceTemplate("pulse://connections/{connection_id}/schema", {
    list: (extra) =>
      reading(callerOf(extra), async (caller) => {
        requireScope(caller.grant, "query");
        const connections = (await listConnectionsOf(deps, caller.userId)).filter((c) => mayReach(caller.grant, c.id));
        return {
          resources: connections.map((c) => ({ uri: schemaUri(c.id), name: `${c.name} schema`, description: `${c.db_type} database ${c.database_name}`, mimeType: "text/plain" })),
        };
      }),
  });
  server.registerResource(
    "schema",
    template,
    { title: "Database schema", description: "One line per table (columns, types, keys, ~rows); large schemas ranked and budgeted as describe_schema does.", mimeType: "text/plain" },
    (uri, variables, extra) =>
      reading(callerOf(extra), async (caller) => {
        const id = Number(variables.connection_id);
        if (!Number.isInteger(id) || id < 1 || id > MAX_ID) throw new McpError(ErrorCode.InvalidParams, `No such resource: ${uri.href} (the connection id must be a positive integer)`);
        requireScope(caller.grant, "query", id);
        const schema = await describeSchema(deps, caller.userId, id, {}, "describe_schema with tables: [...] gives them in full");
        return { contents: [{ uri: schemaUri(id), mimeType: "text/plain", text: `Dialect: ${schema.dialect}\n${schema.text}` }] };
      }),
  );
}
