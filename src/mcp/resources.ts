// Each connection's schema as an MCP resource, `pulse://connections/{id}/schema`: what
// describe_schema gives without a question, for clients that attach context as resources
// rather than call a tool. Listed and read under the same rules as the tools (the `query`
// scope, a key's connections, the caller's own connections only).

import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";

import type { Deps } from "../deps.js";
import { callerOf, type McpCaller } from "./caller.js";
import { failureOf } from "./tool-results.js";
import { queryableConnections, schemaForClient } from "./tools/connections.js";
import { rowId } from "./tools/inputs.js";

const schemaUri = (id: number) => `pulse://connections/${id}/schema`;

/** Runs a resource's body for `caller`. A resource has no `isError` result as a tool has, so a
 * failure is a JSON-RPC error carrying what a tool's error would say (tool-results.ts). */
async function reading<T>(caller: McpCaller, run: (caller: McpCaller) => Promise<T>): Promise<T> {
  try {
    return await run(caller);
  } catch (err) {
    if (err instanceof McpError) throw err;
    const { code, detail, extra, ours } = failureOf(caller, err);
    const request = extra.request_id === undefined ? "" : ` (request ${String(extra.request_id)})`;
    throw new McpError(ours ? ErrorCode.InternalError : ErrorCode.InvalidParams, `${code}: ${detail}${request}`);
  }
}

export function registerSchemaResources(server: McpServer, deps: Deps) {
  const template = new ResourceTemplate("pulse://connections/{connection_id}/schema", {
    list: (extra) =>
      reading(callerOf(extra), async (caller) => ({
        resources: (await queryableConnections(deps, caller)).map((c) => ({
          uri: schemaUri(c.id),
          name: `${c.name} schema`,
          description: `${c.db_type} database ${c.database_name}`,
          mimeType: "text/plain",
        })),
      })),
  });
  server.registerResource(
    "schema",
    template,
    { title: "Database schema", description: "One line per table (columns, types, keys, ~rows); large schemas ranked and budgeted as describe_schema does.", mimeType: "text/plain" },
    (uri, variables, extra) =>
      reading(callerOf(extra), async (caller) => {
        // Digits only, as schemaUri writes them: Number() would take 0x1 and 1.0 for 1.
        const digits = String(variables.connection_id);
        const id = rowId.safeParse(/^[1-9]\d*$/.test(digits) ? Number(digits) : Number.NaN);
        if (!id.success) throw new McpError(ErrorCode.InvalidParams, `No such resource: ${uri.href} (the connection id must be a positive integer)`);
        const { text } = await schemaForClient(deps, caller, id.data, {});
        return { contents: [{ uri: schemaUri(id.data), mimeType: "text/plain", text }] };
      }),
  );
}
