// When a monitored table runs next: every `interval_seconds` (plus jitter, so tables added
// together spread out), or at the times of a cron expression read in its IANA time zone
// (croner), exactly then. Pure: the scheduler and the table verbs pass the time in.

import { Cron } from "croner";

import type { Monitoring } from "./runtime.js";

export const DEFAULT_TIMEZONE = "UTC";
/** How many upcoming runs a schedule's shortest gap is measured over. */
const GAP_SAMPLE = 24;
/** A scheduled table's stored interval (what schema drift's freshness goes by) is its gap, up
 * to the longest interval a table may have. */
const MAX_GAP_SECONDS = 7 * 86_400;

/** What a table's schedule is stored as: a cron expression and its zone, or neither. */
export interface TableTiming {
  intervalSeconds: number;
  schedule: string | null;
  timezone: string | null;
}

/** A problem with a schedule, as the field it is in and what to fix. */
export interface ScheduleIssue {
  field: "schedule" | "timezone";
  message: string;
}

/** The zone as the time zone database spells it, when the name sent differs only in case
 * (`europe/paris` is stored and shown as Europe/Paris, so one zone reads the same everywhere and
 * PATCH with either spelling is the same schedule); an alias (US/Pacific) stays as sent; null
 * for no zone. */
export function zoneSpelling(zone: string): string | null {
  const known = canonicalZone(zone);
  return known === null ? null : known.toLowerCase() === zone.toLowerCase() ? known : zone;
}

/** The zone's canonical name in the time zone database, aliases resolved (US/Eastern is
 * America/New_York; Etc/UTC, GMT and Zulu are UTC); null for no zone. */
export function canonicalZone(zone: string): string | null {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

/** Five fields or six (seconds first), as the README promises: croner's seventh field (years)
 * made an impossible schedule search every year to 9999 (2 s of the event loop a request), and
 * its one-shot ISO dates are no schedule. A time given as a list or range (`30 2,14 * * *`) is
 * kept on DST days as a single one is, once, and at the first time after a skipped one (as Vixie
 * cron does); croner's default ran such a time twice at fall-back and skipped it at spring-forward. */
const cronOf = (schedule: string, timezone: string) => new Cron(schedule, { timezone, paused: true, mode: "5-or-6-parts", fixedTimeRule: "no-wildcard" });
/** A schedule already saved: one saved before the five-or-six rule may have a seventh field (it
 * was validated, so it runs), and must still be read, or its table would run again at every
 * lease's end, its next time never set. */
const savedCronOf = (schedule: string, timezone: string) => new Cron(schedule, { timezone, paused: true, fixedTimeRule: "no-wildcard" });

/** A nickname (`@hourly`) or fields: a single word otherwise is croner's one-shot date. */
const CRON_SHAPE = /^(?:@\w+|\S+(?:\s+\S+)+)$/;

/** The schedule's shortest gap between runs, in whole seconds (1 to 7 days), from `now`; or the
 * issue that makes it unusable: a bad expression, an unknown zone, a schedule that never runs. */
export function scheduleGap(schedule: string, timezone: string, now: number): { seconds: number } | ScheduleIssue {
  if (zoneSpelling(timezone) === null) return { field: "timezone", message: `unknown time zone ${timezone}: use an IANA name such as Europe/Paris or UTC` };
  if (!CRON_SHAPE.test(schedule)) return { field: "schedule", message: "not a cron expression: five fields (minute, hour, day of month, month, day of week), six with seconds first, or @hourly and such" };
  let cron: Cron;
  let runs: Date[];
  try {
    cron = cronOf(schedule, timezone);
    runs = cron.nextRuns(GAP_SAMPLE, new Date(now));
  } catch (err) {
    return { field: "schedule", message: `not a cron expression (${cronProblem((err as Error).message)})` };
  }
  if (runs.length === 0) return { field: "schedule", message: "never runs: no date matches it" };
  // Also across the next turn of a day, a month and a year in its zone: a gap only a turn shows
  // (`0,30,59 0-20/2,23 * * *` runs 23:59 then 00:00) is not among the first runs from now.
  const turns = TURNS.map((turn) => cronOf(turn, timezone).nextRun(new Date(now))!.getTime() - TURN_LEAD_MS);
  const sampled = [runs, ...turns.map((start) => cron.nextRuns(GAP_SAMPLE, new Date(start)))];
  let gap = MAX_GAP_SECONDS * 1000;
  for (const sample of sampled) for (let i = 1; i < sample.length; i++) gap = Math.min(gap, sample[i]!.getTime() - sample[i - 1]!.getTime());
  return { seconds: Math.max(1, Math.floor(gap / 1000)) };
}

/** The turns of a day, a month and a year, and how long before one its runs are sampled from. */
const TURNS = ["0 0 * * *", "0 0 1 * *", "0 0 1 1 *"];
const TURN_LEAD_MS = 3_600_000;

/** croner's reason, in words that hold: it names the largest value allowed as the one refused
 * ("Invalid value for day: 31" for a 32). */
const cronProblem = (message: string) => message.replace(/^CronPattern: /, "").replace(/^Invalid value for (\w+): \d+$/, "a $1 out of its range");

/** When a schedule with no time left is due: never, as the store can say it (it keeps no year
 * past 9999 that it can read back from a JavaScript date). */
const NEVER = new Date("9999-12-31T00:00:00Z");

/** The first run after `now`: the schedule's next time, or the interval with jitter. A
 * schedule that has no time left (its last date passed) is never due again. */
export function nextRunAfter(m: Monitoring, table: TableTiming, now: number): Date {
  if (table.schedule === null) return new Date(now + table.intervalSeconds * 1000 + m.jitterMs(table.intervalSeconds));
  return savedCronOf(table.schedule, table.timezone ?? DEFAULT_TIMEZONE).nextRun(new Date(now)) ?? NEVER;
}
