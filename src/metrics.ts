// Prometheus metrics (GET /metrics, src/http/routes/metrics.ts). Each set of dependencies has
// its own registry, not prom-client's global one: tests build many apps in one process, and
// their counts must not mix. Label values come from short fixed lists (route patterns, not
// paths; dialects; guard rules), never from what a client sent, so series stay few.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import type { Dialect } from "./connectors/types.js";
import { DomainError, SqlRefusedError } from "./errors.js";
import { within } from "./within.js";

const DIALECTS: readonly Dialect[] = ["postgresql", "mysql", "sqlite"];
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);
/** A scrape waits this long for the count of open alerts (one indexed count on the store);
 * scrapers time out at a few seconds. */
const ALERTS_READ_WAIT_MS = 1_000;
/** Seconds; /query answers in milliseconds, /ask in tens of seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Counts of one dialect's statements, made once per connector: the /query path only
 * increments children created in advance. */
export interface StatementCounts {
  ok(): void;
  /** A statement the guard or a budget refused, or the database failed. */
  failed(err: unknown): void;
}

/** What the agent reports of each model call. */
export interface ModelCallCounts {
  called(usage: { prompt_tokens: number; completion_tokens: number }): void;
  failed(err: unknown): void;
}

export interface Metrics {
  readonly registry: Registry;
  /** One answered request: its method, route pattern (null: no route matched), status, and the
   * time taken (null: refused by the HTTP server before it was read, so not timed). */
  request(method: string, route: string | null, status: number, seconds: number | null): void;
  statements(dialect: Dialect): StatementCounts;
  /** One monitored table's run and the statuses of its checks. */
  monitorRun(trigger: "schedule" | "manual", checks: readonly { checkKind: string; status: string }[]): void;
  model: ModelCallCounts;
  /** Values read when scraped: the connectors open in the cache, the alerts open now. */
  readAtScrape(sources: { openConnectors: () => number; openAlerts: () => Promise<number> }): void;
}

/** `processMetrics`: also the process's CPU, memory, event loop and GC (prom-client's default
 * metrics), which a server wants once; tests leave them out. */
export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: "pulse_" });

  const requests = new Counter({
    name: "pulse_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "pulse_http_request_duration_seconds",
    help: "Time to answer an HTTP request, by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const statements = new Counter({
    name: "pulse_statements_total",
    help: "Statements asked of customer databases, by dialect and outcome (ok, refused, budget_exceeded, failed)",
    labelNames: ["dialect", "outcome"] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: "pulse_statements_refused_total",
    help: "Statements the SQL guard refused, by dialect and the rule that refused them",
    labelNames: ["dialect", "rule"] as const,
    registers: [registry],
  });
  const monitorRuns = new Counter({
    name: "pulse_monitor_runs_total",
    help: "Monitored table runs, by trigger (schedule, manual)",
    labelNames: ["trigger"] as const,
    registers: [registry],
  });
  const monitorChecks = new Counter({
    name: "pulse_monitor_checks_total",
    help: "Monitoring checks run, by kind and status (pass, fail, error, skipped)",
    labelNames: ["kind", "status"] as const,
    registers: [registry],
  });
  const modelCalls = new Counter({
    name: "pulse_model_calls_total",
    help: "Calls to the language model, by outcome (ok, or the error code)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const modelTokens = new Counter({
    name: "pulse_model_tokens_total",
    help: "Tokens the model server reported, by kind (prompt, completion)",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  let sources: Parameters<Metrics["readAtScrape"]>[0] | undefined;
  /** The count being read: scrapes while the store is slow share it rather than each adding a
   * read that waits for the store's statement timeout. */
  let counting: Promise<number> | undefined;
  new Gauge({
    name: "pulse_connectors_open",
    help: "Connectors (connection pools) open in this process's cache",
    registers: [registry],
    collect() {
      if (sources) this.set(sources.openConnectors());
    },
  });
  new Gauge({
    name: "pulse_alerts_open",
    help: "Alerts open (or resolving) across the deployment",
    registers: [registry],
    async collect() {
      // The store unreachable or slow: the scrape still answers, at once, with the last count.
      if (!sources) return;
      counting ??= sources.openAlerts().finally(() => (counting = undefined));
      await within(counting, ALERTS_READ_WAIT_MS, "counting open alerts").then((n) => this.set(n), () => {});
    },
  });

  // Children made once per combination seen: a lookup, not prom-client's label hashing, per request.
  const httpChildren = new Map<string, { count: Counter.Internal; latency: Histogram.Internal<"method" | "route"> }>();
  const byDialect = new Map<Dialect, StatementCounts>();
  for (const dialect of DIALECTS) byDialect.set(dialect, statementCountsOf(dialect));

  function statementCountsOf(dialect: Dialect): StatementCounts {
    const ok = statements.labels(dialect, "ok");
    const refused = statements.labels(dialect, "refused");
    const overBudget = statements.labels(dialect, "budget_exceeded");
    const failed = statements.labels(dialect, "failed");
    const byRule = new Map<string, Counter.Internal>();
    return {
      ok: () => ok.inc(),
      failed(err) {
        if (err instanceof SqlRefusedError) {
          refused.inc();
          let rule = byRule.get(err.rule);
          if (!rule) byRule.set(err.rule, (rule = refusals.labels(dialect, err.rule)));
          rule.inc();
        } else if (err instanceof DomainError && err.code === "budget_exceeded") {
          overBudget.inc();
        } else {
          failed.inc();
        }
      },
    };
  }

  const modelOk = modelCalls.labels("ok");
  const promptTokens = modelTokens.labels("prompt");
  const completionTokens = modelTokens.labels("completion");

  return {
    registry,
    request(method, route, status, seconds) {
      const m = METHODS.has(method) ? method : "other";
      const r = route ?? "unmatched";
      const key = `${m} ${status} ${r}`;
      let children = httpChildren.get(key);
      if (!children) httpChildren.set(key, (children = { count: requests.labels(m, r, String(status)), latency: latency.labels(m, r) }));
      children.count.inc();
      if (seconds !== null) children.latency.observe(seconds);
    },
    statements: (dialect) => byDialect.get(dialect)!,
    monitorRun(trigger, checks) {
      monitorRuns.labels(trigger).inc();
      for (const check of checks) monitorChecks.labels(check.checkKind, check.status).inc();
    },
    model: {
      called(usage) {
        modelOk.inc();
        promptTokens.inc(usage.prompt_tokens);
        completionTokens.inc(usage.completion_tokens);
      },
      failed(err) {
        modelCalls.labels(err instanceof DomainError ? err.code : "unexpected").inc();
      },
    },
    readAtScrape(read) {
      sources = read;
    },
  };
}
