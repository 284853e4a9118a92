// Freshness: how far the newest value of a timestamp column lags behind now, minus what the
// replica we read is behind its primary. One statement on the monitored database per run
// (on PostgreSQL the replica's lag comes in the same statement).

import { REPLAY_LAG_SECONDS_SQL } from "../../connectors/drivers/postgres-replica.js";
import type { Cell, Dialect } from "../../connectors/types.js";
import type { FreshnessCheck } from "../../store/column-types.js";
import { judgedByBaseline } from "../check-config.js";
import { formatDuration, prepareFreshness } from "../freshness.js";
import { DEFAULT_TIMEZONE } from "../schedule.js";
import { instantOfWallClock } from "../wall-clock.js";
import { baselineOptions } from "./judging.js";
import { qualifiedName, quoteIdent } from "../../connectors/sql-text.js";
import { firstRow, numberOf, printedCell, type CheckContext, type CheckResult } from "./types.js";

/** On PostgreSQL the standby's lag comes with the newest timestamp, measured as the probe
 * measures it (a caught-up standby is 0 behind, however idle its primary: see postgres-replica.ts). */
export function freshnessStatement(dialect: Dialect, schema: string | null, table: string, column: string): string {
  const latest = `max(${quoteIdent(dialect, column)}) AS latest`;
  const from = `FROM ${qualifiedName(dialect, schema, table)}`;
  if (dialect !== "postgresql") return `SELECT ${latest} ${from}`;
  return `SELECT ${latest},
  ${REPLAY_LAG_SECONDS_SQL} AS replica_lag_seconds
${from}`;
}

const HAS_ZONE = /(Z|[+-]\d\d(:?\d\d)?)$/i;

/** The furthest a JavaScript date reaches either side of 1970, in ms. */
const MAX_DATE_MS = 8.64e15;

/** Julian days (SQLite's julianday(), PostgreSQL's `julian`) from the years 763 to 3501: as
 * epoch seconds, a few weeks of 1970, which no column means; read so, a feed stamped a minute
 * ago lagged 57 years. */
const JULIAN_DAYS = { from: 2e6, below: 3e6, unixEpoch: 2_440_587.5 };

/** Epoch numbers by size: up to 1e11 seconds (to the year 5138), then milliseconds, then
 * microseconds (PostgreSQL's and many event pipelines'), then nanoseconds. Read in the wrong
 * unit, a stale column of microseconds was a time 50,000 years ahead, fresh for ever. */
const EPOCH_UNITS: readonly [below: number, toMs: (n: number) => number][] = [
  [1e11, (s) => s * 1000],
  [1e14, (ms) => ms],
  [1e17, (us) => Math.round(us / 1e3)],
  [Infinity, (ns) => Math.round(ns / 1e6)],
];

/** A timestamp cell as epoch ms. Values without a zone (timestamp, DATETIME, SQLite text) are
 * read in `zone`, the check's `timezone` (UTC, the zone Pulse's sessions run in, unless it says
 * what the column was written in); numbers are Julian days or epoch seconds, milliseconds,
 * microseconds or nanoseconds by their size, and no timestamp past what a date can hold. */
export function timestampOf(cell: Cell | undefined, zone = DEFAULT_TIMEZONE): number | null {
  if (cell === null || cell === undefined) return null;
  if (typeof cell === "number") {
    const ms =
      cell >= JULIAN_DAYS.from && cell < JULIAN_DAYS.below
        ? Math.round((cell - JULIAN_DAYS.unixEpoch) * 86_400_000)
        : EPOCH_UNITS.find(([below]) => Math.abs(cell) < below)![1](cell);
    return Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS ? ms : null;
  }
  if (typeof cell !== "string") return null;
  const text = cell.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return timestampOf(Number(text));
  // A date alone (a DATE column) is its midnight.
  const dated = /^\d{4}-\d\d-\d\d$/.test(text) ? `${text}T00:00:00` : text;
  const iso = dated.includes("T") || !/^\d{4}-\d\d-\d\d \d/.test(dated) ? dated : dated.replace(" ", "T");
  // PostgreSQL's own text of a timestamptz ends in an hour-only offset (+00, +05), which
  // Date.parse does not take: as +00:00.
  const naive = /T/.test(iso) && !HAS_ZONE.test(iso);
  const withZone = !/T/.test(iso) ? iso : naive ? `${iso}Z` : iso.replace(/([+-]\d\d)$/, "$1:00");
  const ms = Date.parse(withZone);
  if (!Number.isFinite(ms)) return null;
  return naive ? instantOfWallClock(ms, zone) : ms;
}

const FUTURE_TOLERANCE_MS = 86_400_000;

export async function runFreshness(ctx: CheckContext, check: FreshnessCheck): Promise<CheckResult> {
  const dialect = ctx.connector.dialect;
  const result = await ctx.query(freshnessStatement(dialect, ctx.table.schema, ctx.table.name, check.column), 1);
  const row = firstRow(result) ?? {};
  const raw = row.latest ?? null;
  const latest = timestampOf(raw, check.timezone);
  if (raw !== null && latest === null) {
    return { status: "error", value: null, message: `column ${check.column} holds ${printedCell(raw)}, which is not a timestamp` };
  }
  // Up to a day ahead is a clock or a time zone (a column without one read in the wrong one), and
  // reads as fresh; past that, a sentinel (9999-12-31, a far "valid until") or a scheduled row
  // would read as fresh for ever, and the check could never see the data go stale.
  if (latest !== null && latest - ctx.now > FUTURE_TOLERANCE_MS) {
    return {
      status: "error",
      value: null,
      message: `the newest ${check.column} is ${new Date(latest).toISOString()}, ${formatDuration((latest - ctx.now) / 1000)} in the future: a sentinel or scheduled row hides how fresh the data is; watch a column that holds only past times, or a custom_sql check that leaves future rows out`,
    };
  }
  const replicaLag =
    dialect === "postgresql" ? (numberOf(row.replica_lag_seconds) ?? 0) : dialect === "mysql" ? await ctx.replicationLagSeconds() : 0;
  const fixed = !judgedByBaseline(check);
  const step = prepareFreshness({
    latest,
    now: ctx.now,
    replicationLagSeconds: replicaLag,
    maxLagSeconds: check.max_lag_seconds,
    baseline: baselineOptions(check.baseline),
  });
  const judged = "finish" in step ? step.finish(await ctx.judgeBaseline(step.point, step.options)) : step;
  const learning = judged.verdict === "learning";
  return {
    status: judged.verdict === "anomaly" ? "fail" : "pass",
    value: judged.dataLagSeconds,
    expected: learning ? null : judged.expected,
    lower: learning ? null : judged.lower,
    upper: learning ? null : judged.upper,
    anomalous: !fixed && judged.verdict === "anomaly",
    message: judged.reason,
    details: {
      latest: latest === null ? null : new Date(latest).toISOString(),
      lag_seconds: judged.lagSeconds,
      replication_lag_seconds: judged.replicationLagSeconds,
      verdict: judged.verdict,
      ...(judged.lagSeconds !== null ? { lag: formatDuration(judged.lagSeconds) } : {}),
    },
  };
}
