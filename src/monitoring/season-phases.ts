// The season a time falls in: its hour of the day or its weekday, in a time zone (business
// days are local). Pure; zone lookups are cached, since they are slow and every fit asks.

import type { Seasonality } from "../store/column-types.js";

export type { Seasonality };
export type SingleSeason = Exclude<Seasonality, "hour_and_weekday">;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const weekdayIndex: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
const zoneFormats = new Map<string, Intl.DateTimeFormat>();
/** Zone lookups are slow; every zone offset is a multiple of 15 minutes, so cache per quarter hour. */
const zonePhases = new Map<string, [hour: number, weekday: number]>();
const QUARTER_MS = 15 * 60 * 1000;

/** Season of `t` in `timeZone`: the hour (0–23) or the weekday (0 = Sunday); 0 for none. */
export function phaseOf(t: number, season: SingleSeason, timeZone: string): number {
  if (season === "none") return 0;
  if (timeZone === "UTC") {
    // 1970-01-01 was a Thursday.
    return season === "hour_of_day" ? Math.floor(t / HOUR_MS) % 24 : (Math.floor(t / DAY_MS) + 4) % 7;
  }
  const key = `${timeZone}:${Math.floor(t / QUARTER_MS)}`;
  let phases = zonePhases.get(key);
  if (phases === undefined) {
    let format = zoneFormats.get(timeZone);
    if (format === undefined) {
      format = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", hour: "numeric", weekday: "short" });
      zoneFormats.set(timeZone, format);
    }
    const parts = format.formatToParts(t);
    const hour = Number(parts.find((p) => p.type === "hour")?.value ?? 0) % 24;
    phases = [hour, weekdayIndex[parts.find((p) => p.type === "weekday")?.value ?? "Sun"] ?? 0];
    if (zonePhases.size >= 50_000) zonePhases.clear(); // a few years of quarter hours; then start over
    zonePhases.set(key, phases);
  }
  return season === "hour_of_day" ? phases[0] : phases[1];
}
