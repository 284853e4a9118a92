// How often a line of one kind that a library prints goes to the log. A library prints on
// what a server sends it: mysql2 a line for every packet whose sequence id it did not expect,
// so a MySQL server numbering its packets wrong turned one /query of a thousand rows into a
// thousand log lines. A few of each kind a minute say as much.

/** Lines of one kind logged in a window; the rest are counted, not logged. */
export const CONSOLE_LINES_PER_KIND = 5;
export const CONSOLE_WINDOW_MS = 60_000;
/** Kinds followed at once: text that varies past its digits (a server's words) makes a new kind
 * each time, and must not grow the map without end. */
const MAX_KINDS = 1_000;
/** The start of a line that names its kind. */
const KIND_CHARS = 120;

/** One line's kind: its start with the numbers left out ("got packets out of order. Expected 3
 * but received 103" is one kind, whatever the numbers). */
export const kindOf = (text: string) => text.slice(0, KIND_CHARS).replace(/\d+/g, "#");

interface Window {
  startedAt: number;
  logged: number;
  dropped: number;
}

/** Whether a line of `kind` is logged now and, if so, how many of its kind were not since the
 * last one that was (to say so on this one). `now`: the clock, injected for tests. */
export function consoleRepeats(now: () => number = Date.now): (kind: string) => { log: boolean; dropped: number } {
  const windows = new Map<string, Window>();
  return (kind) => {
    const at = now();
    let w = windows.get(kind);
    if (!w || at - w.startedAt >= CONSOLE_WINDOW_MS) {
      const dropped = w?.dropped ?? 0;
      if (!w && windows.size >= MAX_KINDS) forgetEnded(windows, at);
      w = { startedAt: at, logged: 0, dropped };
      windows.set(kind, w);
    }
    if (w.logged >= CONSOLE_LINES_PER_KIND) {
      w.dropped += 1;
      return { log: false, dropped: 0 };
    }
    w.logged += 1;
    const dropped = w.dropped;
    w.dropped = 0;
    return { log: true, dropped };
  };
}

/** Makes room: kinds whose window has ended first (their dropped lines go unsaid), all of them
 * if that frees nothing. */
function forgetEnded(windows: Map<string, Window>, at: number): void {
  for (const [kind, w] of windows) if (at - w.startedAt >= CONSOLE_WINDOW_MS) windows.delete(kind);
  if (windows.size >= MAX_KINDS) windows.clear();
}
