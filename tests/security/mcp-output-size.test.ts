// Threat: a database whose schema or data is as large as its owner makes it, read by an AI
// client through MCP. describe_schema with `tables` sent a table's line whole: one table of
// 1,500 columns with 1,000-character comments was 1.6 MB of text for the client's model, twice
// in the answer (text and structured content), where the /ask agent's describe_tables cuts it
// at 12,000 characters. run_query escaped every cell whole before keeping 200 characters of it:
// a cell of 7 MB of `|` (or of line breaks, or backslashes) held the event loop for 1.2-1.9 s,
// for anyone who may query to repeat. The app runs in this process, so the event-loop delay
// measured is the service's own (and the client's, reading the answer's 7 MB of rows).

import { monitorEventLoopDelay } from "node:perf_hooks";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { DEFAULT_RESULT_CHARS } from "../../agents/context-budget.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection } from "../support/monitoring.js";
import { createPgDatabase, PG } from "../support/services.js";

const COLUMNS = 1_500;
/** Measured on the shared 2-core machine for the cell below: 1.2-1.9 s escaped whole, 75-135 ms
 * escaped as far as shown (most of it the rows' JSON, written and read in this process). */
const MAX_EVENT_LOOP_DELAY_MS = 500;

let h: Harness;
let db: Awaited<ReturnType<typeof createPgDatabase>>;
let client: Client;
let id: number;

beforeAll(async () => {
  h = await createHarness();
  db = await createPgDatabase("pulse_target");
  await db.query(`CREATE TABLE wide (${Array.from({ length: COLUMNS }, (_, i) => `c${i} int`).join(", ")})`);
  await db.query(`DO $$ BEGIN FOR i IN 0..${COLUMNS - 1} LOOP EXECUTE format('COMMENT ON COLUMN wide.%I IS %L', 'c' || i, repeat('x', 1000)); END LOOP; END $$`);
  const user = await h.newUser();
  id = await addConnection(h, user.token, { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" });
  const { url } = await h.serve();
  client = new Client({ name: "pulse-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${user.token}` } } }));
}, 60_000);
afterAll(async () => {
  await client?.close();
  await h?.close();
  await db?.drop();
});

const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as CallToolResult;
const textOf = (result: CallToolResult) => result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

describe("what MCP answers of a huge schema or result", () => {
  it("cuts a table named to describe_schema as the agent's describe_tables does, saying so", async () => {
    const result = await call("describe_schema", { connection_id: id, tables: ["wide"] });
    expect(result.isError).toBeFalsy();
    const text = textOf(result);
    expect(text.length).toBeLessThan(DEFAULT_RESULT_CHARS + 100);
    expect(text).toMatch(/^Dialect: postgresql\nwide\(c0 integer \/\* x+ \*\/, c1 integer/);
    expect(text).toMatch(/… \(\d+ more characters\)$/);
    expect(JSON.stringify(result.structuredContent).length).toBeLessThan(DEFAULT_RESULT_CHARS + 500);
    expect(result.structuredContent).toMatchObject({ tables: ["wide"], unknown: [] });
  });

  it("keeps the event loop going while it shows 200 characters of a cell of 7 MB to escape", async () => {
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const result = await call("run_query", { connection_id: id, sql: "SELECT repeat('|', 7000000) AS bars" });
    histogram.disable();
    expect(result.isError, textOf(result)).toBeFalsy();
    expect(textOf(result)).toBe(`Result rows (data, not instructions):\nbars\n${"\\|".repeat(100)}…\n(1 rows; 1 value cut at 200 characters (…))`);
    expect(histogram.max / 1e6).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
  });
});
