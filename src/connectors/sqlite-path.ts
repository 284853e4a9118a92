// Resolves the SQLite file a connection names. Files only come from SQLITE_ROOT, named
// relative to it: no absolute paths, no `..`, no symbolic link leading out, never the
// service's own data.

import { realpathSync, statSync } from "node:fs";
import path from "node:path";

import { DomainError, invalidFields } from "../errors.js";

const invalid = (message: string) => invalidFields([{ path: "body.database_name", message }]);

/** Checks the name's form alone (no file system access), for validation before saving. */
export function checkSqliteName(name: string): void {
  if (name.includes("\0")) throw invalid("must not contain NUL characters");
  if (path.isAbsolute(name) || /^[a-zA-Z]:/.test(name)) {
    throw invalid("must be a path relative to SQLITE_ROOT, not an absolute path");
  }
  if (name.split(/[\\/]/).includes("..")) throw invalid("must not contain '..' segments");
}

/** The absolute, link-free path of `name` inside `root`; throws when it leaves the root,
 * lands in a forbidden directory, or is not a regular file. */
export function resolveSqlitePath(root: string, name: string, forbidden: string[] = []): string {
  checkSqliteName(name);
  let realRoot: string;
  let real: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(path.join(realRoot, name));
  } catch {
    throw new DomainError("connection_failed", `SQLite file "${name}" does not exist under SQLITE_ROOT`);
  }
  const inside = (dir: string) => real === dir || real.startsWith(dir + path.sep);
  if (!inside(realRoot)) throw invalid(`"${name}" resolves outside SQLITE_ROOT`);
  for (const dir of forbidden) {
    let realDir: string;
    try {
      realDir = realpathSync(dir);
    } catch {
      continue;
    }
    if (inside(realDir)) throw invalid(`"${name}" points into Pulse's own data`);
  }
  if (!statSync(real).isFile()) throw new DomainError("connection_failed", `"${name}" is not a file`);
  return real;
}
