// GET /metrics over HTTP: Prometheus's text format for a scraper holding METRICS_TOKEN, 401
// for anyone else, 404 when no token is set; requests counted by route pattern, statements by
// outcome and refusal rule, monitoring runs, model calls and tokens; nothing secret in it.

import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { activeAlertsQuery, openAlertsCount } from "../../src/store/monitoring-alerts.js";
import { startFakeOpenAI, type FakeOpenAI, type FakeReply } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addClosedAlerts, addConnection, monitorTable, sqliteMonitoredDb } from "../support/monitoring.js";
import { pgAdmin } from "../support/services.js";
import { postgresTarget } from "../support/targets.js";

const METRICS_TOKEN = "scrape-token-0123456789abcdef";

let h: Harness;
let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI([
    { toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) AS n FROM Album" } }], usage: { prompt_tokens: 120, completion_tokens: 15 } },
    { content: "347 albums.", usage: { prompt_tokens: 160, completion_tokens: 8 } },
  ]);
  h = await createHarness({ env: { METRICS_TOKEN, OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model" } });
});
afterAll(async () => {
  await h?.close();
  await fake?.close();
});

const scrape = (token: string | null = METRICS_TOKEN) => h.call("GET", "/metrics", { token: token ?? undefined });

/** The value of one sample: `name{labels}` exactly as Prometheus writes it (labels in order). */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("GET /metrics", () => {
  it("answers Prometheus's text format to the holder of METRICS_TOKEN", async () => {
    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain("# TYPE pulse_http_requests_total counter");
    expect(res.text).toContain("# TYPE pulse_http_request_duration_seconds histogram");
  });

  it("refuses a missing or wrong token with 401, a user's session token too", async () => {
    const user = await h.newUser();
    for (const token of [null, "wrong-token-0123456789abcdef", METRICS_TOKEN.slice(0, -1), user.token]) {
      const res = await scrape(token);
      expect(res.status).toBe(401);
      expect(res.body.code).toBe("unauthorized");
      expect(res.text).not.toContain("pulse_");
    }
  });

  it("serves the token a scraper sends when METRICS_TOKEN came with a line break (a secret mounted from a file)", async () => {
    const mounted = await createHarness({ env: { METRICS_TOKEN: `${METRICS_TOKEN}\n` } });
    try {
      expect((await mounted.call("GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(200);
    } finally {
      await mounted.close();
    }
  });

  it("answers 404 when METRICS_TOKEN is not set, whatever the token", async () => {
    const off = await createHarness();
    try {
      const answer = await off.call("GET", "/metrics");
      expect(answer.status).toBe(404);
      expect(answer.body.detail).toContain("set METRICS_TOKEN");
      expect((await off.call("GET", "/metrics", { token: METRICS_TOKEN })).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});

describe("what it counts", () => {
  it("counts requests by route pattern and status, never by raw path", async () => {
    const user = await h.newUser();
    const before = sample((await scrape()).text, 'pulse_http_requests_total{method="GET",route="/databases/:id",status="404"}') ?? 0;
    for (const id of [987654, 987655, 987656]) expect((await h.call("GET", `/databases/${id}`, { token: user.token })).status).toBe(404);
    await h.call("GET", "/no/such/route/123", { token: user.token });
    const text = (await scrape()).text;
    expect(sample(text, 'pulse_http_requests_total{method="GET",route="/databases/:id",status="404"}')).toBe(before + 3);
    expect(text).toMatch(/pulse_http_request_duration_seconds_count\{method="GET",route="\/databases\/:id"\} \d+/);
    expect(text).toMatch(/pulse_http_requests_total\{method="GET",route="unmatched",status="404"\} \d+/);
    expect(text).not.toContain("987654");
    expect(text).not.toContain("/no/such/route");
  });

  it("counts a request under the route that answered it, not a later one its path also matches, with or without a token", async () => {
    const user = await h.newUser();
    const series = (status: number) => `pulse_http_requests_total{method="GET",route="/databases/session-status",status="${status}"}`;
    const before = (await scrape()).text;
    // "/databases/session-status" also matches "/databases/:id", registered after it.
    await h.call("GET", "/databases/session-status", { token: user.token });
    await h.call("GET", "/databases/session-status");
    const after = (await scrape()).text;
    for (const status of [200, 401]) expect(sample(after, series(status)), String(status)).toBe((sample(before, series(status)) ?? 0) + 1);
  });

  it("counts a request whose client hung up as 499 (and logs it so), apart from a statement timeout's 408", async () => {
    const target = await postgresTarget();
    try {
      const user = await h.newUser();
      const added = await h.call("POST", "/databases/add_db_connection", { token: user.token, json: target.body });
      const id = added.body.db_connection.id as number;
      const series = (status: number) => `pulse_http_requests_total{method="POST",route="/databases/:id/query",status="${status}"}`;
      const slow = "SELECT count(*) AS n FROM generate_series(1, 1000000000)";
      const before = (await scrape()).text;
      // A real statement timeout: 408, counted so.
      const timedOut = await h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql: slow, timeout_ms: 300 } });
      expect(timedOut.body.code).toBe("query_timeout");

      const { url } = await h.serve();
      const hangUp = new AbortController();
      const asked = fetch(`${url}/databases/${id}/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ sql: slow }),
        signal: hangUp.signal,
      }).catch(() => "hung up");
      const running = async () =>
        (await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 1000000000)%' AND pid <> pg_backend_pid()", "test"))[0]!.n !== "0";
      await vi.waitFor(async () => expect(await running()).toBe(true), { timeout: 10_000, interval: 50 });
      hangUp.abort();
      expect(await asked).toBe("hung up");
      await vi.waitFor(async () => expect(sample((await scrape()).text, series(499))).toBe((sample(before, series(499)) ?? 0) + 1), { timeout: 10_000, interval: 100 });
      expect(sample((await scrape()).text, series(408))).toBe((sample(before, series(408)) ?? 0) + 1);
      const lines = h.logs
        .flatMap((chunk) => chunk.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { msg: string; path?: string; status?: number }))
        .filter((l) => l.msg === "request" && l.path === `/databases/${id}/query`);
      expect(lines.map((l) => l.status)).toEqual([408, 499]);
    } finally {
      await target.drop();
    }
  });

  it("counts statements by dialect and outcome, and refusals by the guard's rule", async () => {
    const user = await h.newConnectedUser();
    const series = (outcome: string) => `pulse_statements_total{dialect="sqlite",outcome="${outcome}"}`;
    const before = (await scrape()).text;
    expect((await h.call("POST", "/query", { token: user.token, json: { sql: "SELECT 1 AS one" } })).status).toBe(200);
    const refused = await h.call("POST", "/query", { token: user.token, json: { sql: "DELETE FROM Artist" } });
    expect(refused.body.code).toBe("sql_refused");
    const after = (await scrape()).text;
    expect(sample(after, series("ok"))).toBe((sample(before, series("ok")) ?? 0) + 1);
    expect(sample(after, series("refused"))).toBe((sample(before, series("refused")) ?? 0) + 1);
    const rule = refused.body.rule as string;
    expect(sample(after, `pulse_statements_refused_total{dialect="sqlite",rule="${rule}"}`)).toBeGreaterThanOrEqual(1);
    expect(sample(after, "pulse_connectors_open")).toBeGreaterThanOrEqual(1);
    // The statements themselves are never labels.
    expect(after).not.toContain("DELETE FROM");
  });

  it("counts monitoring runs and their checks by status, and open alerts", async () => {
    const user = await h.newUser();
    const db = await sqliteMonitoredDb(h.sqliteRoot);
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 1 }],
      alert: { open_after: 1 },
    });
    const openBefore = sample((await scrape()).text, "pulse_alerts_open") ?? 0;
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    const text = (await scrape()).text;
    expect(sample(text, 'pulse_monitor_runs_total{trigger="manual"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'pulse_monitor_checks_total{kind="custom_sql",status="fail"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, "pulse_alerts_open")).toBe(openBefore + 1);
  });

  it("counts open alerts from the index of open ones, as a result's health reads a user's: not every alert that closed", async () => {
    const user = await h.newUser();
    const db = await sqliteMonitoredDb(h.sqliteRoot);
    const table = await monitorTable(h, user.token, {
      connection_id: await addConnection(h, user.token, db.body),
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 1 }],
      alert: { open_after: 1 },
    });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    // Closed alerts stay, one per table and check: 20,000 of them, the open one among them.
    const store = h.pgDatabase!.name;
    const [alert] = (await h.call("GET", "/api/alerts", { token: user.token })).body;
    await addClosedAlerts(h, alert.id, 20_000);
    await pgAdmin("ANALYZE alerts", store);
    const plan = async (query: { toSQL(): { sql: string; params: unknown[] } }) => {
      const { sql, params } = query.toSQL();
      const [row] = await pgAdmin<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${sql}`, store, params);
      return JSON.stringify(row!["QUERY PLAN"]);
    };
    expect(await plan(openAlertsCount(h.deps.store.db))).toContain('"Index Name":"alerts_open_idx"');
    expect(await plan(activeAlertsQuery(h.deps.store.db, user.id))).toContain('"Index Name":"alerts_open_idx"');
    expect(sample((await scrape()).text, "pulse_alerts_open")).toBeGreaterThanOrEqual(1);
  });

  it("counts model calls, the tokens the server reported, and failed calls by error code", async () => {
    const user = await h.newConnectedUser();
    const ask = () => h.call("POST", "/ask", { token: user.token, json: { question: "How many albums?", session_id: user.sessionId, user_id: user.id } });
    expect((await ask()).status).toBe(200);
    let text = (await scrape()).text;
    expect(sample(text, 'pulse_model_calls_total{outcome="ok"}')).toBe(2);
    expect(sample(text, 'pulse_model_tokens_total{kind="prompt"}')).toBe(280);
    expect(sample(text, 'pulse_model_tokens_total{kind="completion"}')).toBe(23);
    // The script is spent: the server answers 500 from now on.
    expect((await ask()).status).toBe(502);
    text = (await scrape()).text;
    expect(sample(text, 'pulse_model_calls_total{outcome="model_failed"}')).toBe(1);
  });

  it("shows no secret: not the scrape token, a user's token, keys or passwords", async () => {
    const user = await h.newConnectedUser();
    await h.call("GET", "/users/me", { token: user.token });
    const text = (await scrape()).text;
    for (const secret of [METRICS_TOKEN, user.token, user.password, user.email, h.config.secretsKey.toString("hex"), new TextDecoder().decode(h.config.jwtSecret)]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe("a streamed answer (POST /ask, text/event-stream)", () => {
  it("is timed and counted when its stream ends, as 499 when its client hangs up mid-stream", async () => {
    const HELD_MS = 1_000;
    const held = () => new Promise<FakeReply>((resolve) => setTimeout(() => resolve({ content: "347 albums." }), HELD_MS));
    const count = { toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) AS n FROM Album" } }] };
    const model = await startFakeOpenAI([count, held, count, { fail: "hang" }]);
    const streamed = await createHarness({ env: { METRICS_TOKEN, OPENAI_BASE_URL: model.baseUrl, OPENAI_MODEL: "fake-model" } });
    try {
      const user = await streamed.newConnectedUser();
      const { url } = await streamed.serve();
      const ask = (signal?: AbortSignal) =>
        fetch(`${url}/ask`, {
          method: "POST",
          headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json", accept: "text/event-stream" },
          body: JSON.stringify({ question: "How many albums?" }),
          signal,
        });
      const metrics = async () => (await streamed.call("GET", "/metrics", { token: METRICS_TOKEN })).text;
      const series = (status: number) => `pulse_http_requests_total{method="POST",route="/ask",status="${status}"}`;
      const seconds = 'pulse_http_request_duration_seconds_sum{method="POST",route="/ask"}';

      // Its first event comes at once, its answer a second later: the request took the second.
      expect(await (await ask()).text()).toContain("event: result");
      await vi.waitFor(async () => expect(sample(await metrics(), series(200))).toBe(1), { timeout: 5_000, interval: 50 });
      expect(sample(await metrics(), seconds)).toBeGreaterThanOrEqual(HELD_MS / 1000);

      // The client leaves after the first event, while the model has not answered.
      const hangUp = new AbortController();
      const reader = (await ask(hangUp.signal)).body!.getReader();
      await reader.read();
      hangUp.abort();
      await vi.waitFor(async () => expect(sample(await metrics(), series(499))).toBe(1), { timeout: 5_000, interval: 50 });
      expect(sample(await metrics(), series(200))).toBe(1);
      const logged = streamed.logs
        .flatMap((chunk) => chunk.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { msg: string; path?: string; status?: number; ms?: number }))
        .filter((l) => l.msg === "request" && l.path === "/ask");
      expect(logged.map((l) => l.status)).toEqual([200, 499]);
      expect(logged[0]!.ms).toBeGreaterThanOrEqual(HELD_MS);
    } finally {
      await streamed.close();
      await model.close();
    }
  }, 30_000);
});
