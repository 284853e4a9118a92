// A wall-clock time (a timestamp without a time zone) as the instant it names in an IANA zone.
// Pure; Intl knows the zones' rules, DST included.

const formats = new Map<string, Intl.DateTimeFormat>();

/** How far `zone`'s clocks are ahead of UTC at the instant `ms`, in ms. */
function offsetMs(zone: string, ms: number): number {
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formats.set(zone, format);
  }
  const part = Object.fromEntries(format.formatToParts(ms).map((p) => [p.type, Number(p.value)]));
  const wall = new Date(0);
  wall.setUTCFullYear(part.year!, part.month! - 1, part.day!);
  wall.setUTCHours(part.hour!, part.minute!, part.second!);
  return wall.getTime() - (ms - (((ms % 1000) + 1000) % 1000));
}

const DAY_MS = 86_400_000;

/**
 * The instant that `wallMs` (the wall-clock time's fields read as if UTC) names in `zone`. As
 * the zone's clocks read it, an offset in force a day either side of it: when they go back, a
 * repeated time is its first occurrence; when they go forward, a skipped time (02:30) is read
 * with the offset before the gap (as 03:30), as JavaScript's and PostgreSQL's own dates do.
 */
export function instantOfWallClock(wallMs: number, zone: string): number {
  if (zone === "UTC") return wallMs;
  const before = offsetMs(zone, wallMs - DAY_MS);
  const after = offsetMs(zone, wallMs + DAY_MS);
  const held = [before, after].map((offset) => wallMs - offset).filter((t) => offsetMs(zone, t) === wallMs - t);
  return held.length > 0 ? Math.min(...held) : wallMs - before;
}
