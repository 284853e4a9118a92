// The ranked, budgeted schema context the /ask agent starts from, for any client: the whole
// schema when it fits the budget, else the tables most relevant to a question and the names of
// the rest; or named tables in full, cut as a tool result is.

import { DEFAULT_RESULT_CHARS } from "../../agents/context-budget.js";
import { buildSchemaIndex, describeTables, schemaContext, type SchemaIndex } from "../../agents/schema-context.js";
import type { SchemaSnapshot } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { connectorFor } from "../connectors/saved-connection.js";
import { cutText } from "../text-cut.js";

/** One index per introspected schema: built once (tens of ms on 1,000 tables), by the first
 * caller for all who ask while it is built, dropped with the schema. */
const indexes = new WeakMap<SchemaSnapshot, Promise<SchemaIndex>>();

export function schemaIndexOf(snapshot: SchemaSnapshot): Promise<SchemaIndex> {
  let index = indexes.get(snapshot);
  if (!index) {
    indexes.set(snapshot, (index = buildSchemaIndex(snapshot)));
    // A failed build is not kept: the next question tries again.
    index.catch(() => indexes.delete(snapshot));
  }
  return index;
}

export interface SchemaDescription {
  dialect: string;
  /** One line per table (columns, types, keys, estimated rows), then maybe an "Other tables" line. */
  text: string;
  /** Tables described in full. */
  tables: string[];
  /** Tables left out of the text (named, as many as fit, on its "Other tables" line). */
  omitted: number;
  /** Names asked for that are not tables of the connection. */
  unknown: string[];
}

export async function describeSchema(
  deps: Deps,
  userId: number,
  connectionId: number,
  request: { question?: string | undefined; tables?: string[] | undefined },
  /** What the "Other tables" line tells the client to do for one of them. */
  lookup: string,
): Promise<SchemaDescription> {
  const connector = await connectorFor(deps, userId, connectionId);
  const index = await schemaIndexOf(await connector.schema());
  if (request.tables && request.tables.length > 0) {
    const described = describeTables(index, request.tables);
    // Cut as the agent's describe_tables cuts (agents/tools.ts): a table's line is as long as
    // its database makes it, and one of 1,500 columns with their comments was 1.6 MB.
    return { dialect: connector.dialect, text: cutText(described.text, DEFAULT_RESULT_CHARS), tables: described.tables, omitted: 0, unknown: described.unknown };
  }
  const context = schemaContext(index, request.question ?? "", { maxTokens: deps.config.agent.schemaTokens, lookup });
  return { dialect: connector.dialect, text: context.text, tables: context.tables, omitted: context.omitted, unknown: [] };
}
