// The floor any HTTP service pays: a bare Hono endpoint running the posted SQL on a plain pg
// pool and returning the rows as JSON. No auth, no session, no guard, no limits.
// Started by bench/query.ts as a child process: PORT, DATABASE_URL, POOL_SIZE.

import { serve } from "@hono/node-server";
import { Hono } from "hono";
import pg from "pg";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_SIZE ?? 10) });
const app = new Hono();
app.post("/query", async (c) => {
  const { sql } = await c.req.json<{ sql: string }>();
  const result = await pool.query({ text: sql, rowMode: "array" });
  return c.json({ columns: result.fields.map((f) => f.name), rows: result.rows });
});
app.get("/health", (c) => c.text("ok"));
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: "127.0.0.1" });
