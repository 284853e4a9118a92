// A dependency named by a setting could not be reached at start: the process prints this one
// line (the setting, where it points, why) and exits non-zero, instead of a driver's stack.

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ERR_INVALID_URL: "not a valid URL",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  ENOTDIR: "a part of the path is a file, not a directory",
  EISDIR: "it is a directory",
};

/** A driver error as a few words: the cause of an errno, else the first line of its message. */
export function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && REASONS[code]) return REASONS[code];
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0]!.trim() || "unknown error";
}

/** The innermost error: the store's own message, not Drizzle's "Failed query: <the whole statement>". */
export function rootCause(err: unknown): unknown {
  let e = err;
  for (let depth = 0; depth < 4 && (e as { cause?: unknown } | null)?.cause; depth++) e = (e as { cause: unknown }).cause;
  return e;
}

/** `host:port[/database]` of a URL, never its credentials. */
export function whereOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname.length > 1 ? u.pathname : ""}`;
  } catch {
    return "an unparseable URL";
  }
}

/** A file under DATA_DIR that could not be made, read or written, as one line: what, where,
 * why, and what to do. */
export function dataDirError(doing: "create" | "read" | "write" | "lock" | "open", file: string, err: unknown): StartupError {
  // mkdir's EEXIST: the directory's name is taken by a file.
  const reason = (err as { code?: unknown } | null)?.code === "EEXIST" ? "a file is there, not a directory" : reasonOf(err);
  const user = process.getuid ? ` (uid ${process.getuid()})` : "";
  return new StartupError(`DATA_DIR: cannot ${doing} ${file} (${reason}); point DATA_DIR at a directory this user${user} may write, or fix that path's owner and permissions`);
}
