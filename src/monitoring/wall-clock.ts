// A wall-clock time (a timestamp without a time zone) as the instant it names in an IANA zone,
// by @date-fns/tz, which reads the zone's rules (DST included) from Intl.

import { TZDateMini } from "@date-fns/tz";

/**
 * The instant that `wallMs` (the wall-clock time's fields read as if UTC) names in `zone`. As
 * JavaScript's and PostgreSQL's own dates do: when the clocks go back, a repeated time is its
 * first occurrence; when they go forward, a skipped time (02:30) is read as the time after the
 * gap (03:30).
 */
export function instantOfWallClock(wallMs: number, zone: string): number {
  if (zone === "UTC") return wallMs;
  const w = new Date(wallMs);
  return new TZDateMini(w.getUTCFullYear(), w.getUTCMonth(), w.getUTCDate(), w.getUTCHours(), w.getUTCMinutes(), w.getUTCSeconds(), w.getUTCMilliseconds(), zone).getTime();
}
