// One process at a time on an embedded store: PGlite is PostgreSQL for a single process, and
// two processes writing one directory corrupt it (and neither sees the other's writes). The
// lock is a file next to the store naming its owner; a lock whose process is gone (kill -9,
// a crash, a reboot) is stale and taken over, so an abrupt end never blocks the next start.

import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { projectRoot } from "../paths.js";
import { dataDirError, StartupError } from "../startup-error.js";

interface Owner {
  pid: number;
  since: string;
  command: string;
}

/** Another live process holds the store. */
export class StoreInUseError extends StartupError {
  constructor(
    readonly dir: string,
    readonly lockPath: string,
    readonly owner: Owner,
  ) {
    super(
      `DATA_DIR: the embedded store ${dir} is in use by another process (pid ${owner.pid}, ${owner.command}, since ${owner.since}); ` +
        `PGlite allows one process: stop it first, or point DATA_DIR elsewhere (if no such process runs, delete ${lockPath})`,
    );
    this.name = "StoreInUseError";
  }
}

export interface DataDirLock {
  release(): void;
}

/** Locks held by this process: a lock file naming our own pid that we do not hold is stale
 * (a restarted container reuses pid 1). */
const held = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive, owned by another user.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // Killed but not yet reaped by its parent (a zombie: a container's pid 1 that reaps nothing
  // keeps it for good), it answers signal 0 as if alive, and holds nothing.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return true; // no /proc (not Linux): signal 0 is all there is
  }
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

function ownerOf(text: string | null): Owner | null {
  try {
    const owner = JSON.parse(text ?? "") as Owner;
    return Number.isSafeInteger(owner.pid) ? owner : null;
  } catch {
    return null; // vanished, or half-written by an owner killed while writing it: stale
  }
}

const readOwner = (lockPath: string) => ownerOf(readText(lockPath));

/** Takes the stale lock read as `seen` out of the way: renamed aside (which one process at a time
 * can do), then deleted only if it is still that lock. Another process that found it stale too
 * may have taken it over meanwhile (deleted it and linked its own): deleting by name removed that
 * fresh lock, and both processes went on as the store's only writer. Such a lock is put back
 * instead (false), and the caller finds the store in use. */
export function clearStaleLock(lockPath: string, seen: string | null): boolean {
  const aside = `${lockPath}.stale.${process.pid}`;
  try {
    renameSync(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true; // cleared by another already
    throw err;
  }
  try {
    if (readText(aside) === seen) return true;
    try {
      linkSync(aside, lockPath);
    } catch {
      // Yet another process took the place meanwhile: its lock stands.
    }
    return false;
  } finally {
    rmSync(aside, { force: true });
  }
}

export function lockDataDir(dir: string): DataDirLock {
  const lockPath = `${dir}.lock`;
  const owner: Owner = { pid: process.pid, since: new Date().toISOString(), command: commandLine() };
  // Written whole under a private name, then linked into place: link() fails if the lock
  // exists, so two starting processes cannot both take it, and no one reads half a file.
  const mine = `${lockPath}.${process.pid}`;
  try {
    writeFileSync(mine, JSON.stringify(owner));
  } catch (err) {
    throw dataDirError("lock", dir, err);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, lockPath);
        held.add(lockPath);
        return ownLock(lockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const seen = readText(lockPath);
      const holder = ownerOf(seen);
      const stale = !holder || (holder.pid === process.pid ? !held.has(lockPath) : !isAlive(holder.pid));
      if (!stale) throw new StoreInUseError(dir, lockPath, holder);
      // Not taken over (another process took it first): the next attempt finds that one's lock.
      clearStaleLock(lockPath, seen);
    }
    throw new StartupError(`DATA_DIR: could not lock the embedded store ${dir} (${lockPath} keeps reappearing)`);
  } finally {
    rmSync(mine, { force: true });
  }
}

function ownLock(lockPath: string): DataDirLock {
  const release = () => {
    process.off("exit", release);
    if (!held.delete(lockPath)) return;
    // Only our own lock: never one a later owner took over.
    if (readOwner(lockPath)?.pid === process.pid) rmSync(lockPath, { force: true });
  };
  // An exit without close() (a crash, process.exit) still frees the store for the next start.
  process.on("exit", release);
  return { release };
}

/** What the owner runs (the server, `pulse check`, ...), for the message of the next one. */
/** The process's script and arguments, a file of the project named from the project's root
 * (dist/src/main.js), any other by its last two parts. */
function commandLine(): string {
  return process.argv
    .slice(1)
    .map((arg) => (arg.startsWith(projectRoot + path.sep) ? path.relative(projectRoot, arg) : arg.split("/").slice(-2).join("/")))
    .join(" ");
}
