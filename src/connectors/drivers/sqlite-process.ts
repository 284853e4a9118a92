// One SQLite child process (sqlite-child.ts): how it starts (under an address-space bound,
// and set to die with the service), and what its end means for the statement it was running.

import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import type * as Esbuild from "esbuild";

import { DomainError } from "../../errors.js";
import { projectPath } from "../../paths.js";
import type { SqliteChildArgs, SqliteReply, SqliteRequest } from "./sqlite-child.js";

export interface SqliteProcessOptions {
  /** Address space the process may reserve, in MiB (Node itself takes about 800); 0: unbounded. */
  memoryMb: number;
  startTimeoutMs: number;
}

/** How a process ended; `outOfMemory` when it said so on its way out. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  outOfMemory: boolean;
}

/** V8's and the C library's last words when an allocation fails under the bound. */
const OUT_OF_MEMORY = /out of memory|allocation failed|failed to reserve|bad_alloc|cannot allocate/i;
const STDERR_TAIL = 4096;
const STDERR_WAIT_MS = 100;
/** A process asked to stop that has not exited by then is killed. */
const STOP_GRACE_MS = 1000;

export class SqliteProcess {
  private readonly child: ChildProcess;
  /** Settles once the process has opened the file (or failed to). */
  readonly ready: Promise<void>;
  readonly exited: Promise<ProcessExit>;
  private stderrTail = "";

  constructor(args: SqliteChildArgs, opts: SqliteProcessOptions, onReply: (reply: Extract<SqliteReply, { kind: "reply" }>) => void) {
    const { command, argv } = commandLine(args, opts.memoryMb);
    this.child = spawn(command, argv, {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      // Nothing of the service's environment (secrets included) is the child's business.
      env: { PATH: process.env.PATH ?? "", MALLOC_ARENA_MAX: "2", ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}) },
    });
    // Never what keeps the service alive: a running request's timer does that.
    this.child.unref();
    this.child.channel?.unref();
    // A pipe to a child is a socket, which can be unref'd too.
    const stderr = this.child.stderr as Socket | null;
    stderr?.unref();
    stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL);
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        const done = () => {
          stderr?.destroy();
          resolve({ code, signal, outOfMemory: OUT_OF_MEMORY.test(this.stderrTail) });
        };
        // Its last words may still be in the pipe; wait for them, briefly (a process it
        // started may hold the pipe open).
        if (!stderr || stderr.readableEnded) return done();
        const timer = setTimeout(done, STDERR_WAIT_MS);
        stderr.once("end", () => {
          clearTimeout(timer);
          done();
        });
      });
      // Failing to start at all ends in 'error' without 'exit'.
      this.child.once("error", () => resolve({ code: null, signal: null, outOfMemory: false }));
    });
    // A send racing the process's death fails here rather than as an uncaught 'error'.
    this.child.on("error", () => undefined);
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new DomainError("connection_failed", `Opening SQLite file "${args.displayName}" took longer than ${opts.startTimeoutMs} ms`));
      }, opts.startTimeoutMs);
      this.child.on("message", (reply: SqliteReply) => {
        if (reply.kind === "ready") {
          clearTimeout(timer);
          resolve();
        } else if (reply.kind === "open_failed") {
          clearTimeout(timer);
          reject(new DomainError("connection_failed", reply.message));
        } else onReply(reply);
      });
      void this.exited.then((exit) => {
        clearTimeout(timer);
        const why = exit.outOfMemory ? ` within its memory limit (${opts.memoryMb} MiB, SQLITE_MEMORY_MB)` : "";
        reject(new DomainError("connection_failed", `Could not open SQLite file "${args.displayName}"${why}`));
      });
    });
  }

  /** False as soon as it has ended (or is ending), before `exited` settles. */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.connected;
  }

  send(request: SqliteRequest): void {
    if (this.child.connected) this.child.send(request);
  }

  /** Ends it now, whatever it is doing: SQLite can not be interrupted any other way. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /** Lets an idle process close its file and exit; kills it if it has not soon after. */
  stop(): Promise<ProcessExit> {
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.kill(), STOP_GRACE_MS);
    timer.unref();
    return this.exited.finally(() => clearTimeout(timer));
  }
}

/**
 * The command that starts a child. On Linux it runs under util-linux's `setpriv --pdeathsig
 * KILL` (killed by the kernel if the service dies, even mid-statement) and `prlimit --as`
 * (an allocation past the bound fails inside the child instead of growing the host's memory).
 */
function commandLine(args: SqliteChildArgs, memoryMb: number): { command: string; argv: string[] } {
  const entry = childEntry();
  let command = process.execPath;
  // No WebAssembly: the child needs none, and each instance would reserve gigabytes of
  // address space (guard regions) under the bound.
  let argv = ["--no-expose-wasm", entry, JSON.stringify(args)];
  // Elsewhere (macOS in development) `ulimit -v` may not be settable at all: no bound.
  if (memoryMb > 0 && process.platform === "linux") {
    const prlimit = executable("prlimit");
    const bound = [`--as=${memoryMb * 1024 * 1024}`, "--core=0", "--", command];
    if (prlimit) [command, argv] = [prlimit, [...bound, ...argv]];
    else [command, argv] = ["/bin/sh", ["-c", `ulimit -v ${memoryMb * 1024} && exec "$0" "$@"`, command, ...argv]];
  }
  const setpriv = executable("setpriv");
  if (setpriv) [command, argv] = [setpriv, ["--pdeathsig", "KILL", "--", command, ...argv]];
  return { command, argv };
}

const found = new Map<string, string | null>();

/** The named program on PATH, on Linux only (both tools are util-linux's). */
function executable(name: string): string | null {
  if (!found.has(name)) {
    const dirs = process.platform === "linux" ? (process.env.PATH ?? "").split(path.delimiter).filter(Boolean) : [];
    const hit = dirs.map((dir) => path.join(dir, name)).find((file) => {
      try {
        accessSync(file, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    found.set(name, hit ?? null);
  }
  return found.get(name) ?? null;
}

/** The child bundled from TypeScript source, made once per process (childEntry). */
let bundledChild: string | undefined;

/**
 * Where the child's code is. Compiled (dist/), sqlite-child.js sits next to this file. From
 * TypeScript source (vitest, `tsx src/main.ts`) it is bundled into one file once per process by
 * esbuild, a dev dependency (production never takes this path): node loading it through tsx's
 * loader instead cost each child 0.2 s of CPU more, three minutes of a test run's 800 children.
 * The bundle is kept under node_modules/.cache, where its packages (better-sqlite3) resolve,
 * named by its content: processes starting at once agree on it, and an edit makes a new one.
 */
function childEntry(): string {
  const compiled = fileURLToPath(new URL("./sqlite-child.js", import.meta.url));
  if (existsSync(compiled)) return compiled;
  return (bundledChild ??= bundleChild());
}

function bundleChild(): string {
  const esbuild = createRequire(import.meta.url)("esbuild") as typeof Esbuild;
  const { outputFiles } = esbuild.buildSync({
    entryPoints: [fileURLToPath(new URL("./sqlite-child.ts", import.meta.url))],
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
  });
  const [bundle] = outputFiles;
  if (!bundle) throw new Error("esbuild made no bundle of sqlite-child.ts");
  const file = projectPath("node_modules", ".cache", "pulse", `sqlite-child-${createHash("sha256").update(bundle.contents).digest("hex").slice(0, 16)}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    // Whole or not at all: another process may be starting a child from it.
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, bundle.contents);
    renameSync(partial, file);
  }
  return file;
}
