// The embedded store holds password hashes and sealed credentials, and PGlite makes its files
// 0666 and directories 0777 whatever the umask: they are closed to everyone but the owner.

import { chmodSync, readdirSync } from "node:fs";
import path from "node:path";

/** Directories 0700 and files 0600 under `dir` (itself included). Files PGlite adds while it
 * runs are unreachable anyway behind the 0700 directory, and are closed again at close. */
export function makeOwnerOnly(dir: string): void {
  chmodSync(dir, 0o700);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) makeOwnerOnly(child);
    else if (entry.isFile()) chmodSync(child, 0o600);
  }
}
