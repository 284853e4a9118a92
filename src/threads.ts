// Small worker-thread pools (piscina) for CPU work that must not run on the event loop:
// the guard's parse of long statements, password hashing. One place knows how a pool finds
// its worker module, compiled or from TypeScript source.

import { createHash } from "node:crypto";
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";

export interface ThreadPoolOptions {
  threads: number;
  /** Tasks waiting for a thread beyond this are refused at once ("Task queue is at limit"). */
  maxQueue: number;
  /** Heap of each thread: work that allocates past it ends the thread, not the process. */
  maxHeapMb?: number;
}

/**
 * A pool running the default export of `compiled` (a .js URL next to the caller in dist/).
 * Every thread starts at once and a thread lost to an abort is replaced at once, so a task
 * rarely waits for a thread to boot. Idle threads never keep the process alive. `onError`
 * gets what no task can be told of (a thread that dies idle or cannot start), which piscina
 * emits as an 'error' event: unheard, that would end the process.
 */
export function createThreadPool(compiled: URL, options: ThreadPoolOptions, onError: (err: unknown) => void): Piscina {
  const pool = new Piscina({
    filename: workerFile(compiled),
    minThreads: options.threads,
    maxThreads: options.threads,
    maxQueue: options.maxQueue,
    ...(options.maxHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb } } : {}),
  });
  pool.on("error", onError);
  return pool;
}

/**
 * The file a thread loads. Compiled, it is `compiled` itself. From TypeScript source (vitest,
 * `tsx src/main.ts`) only the .ts exists, and a worker thread on Node 20 cannot load it, even
 * with `--import tsx` in its execArgv (ERR_UNKNOWN_FILE_EXTENSION; see drivers/sqlite.ts). So a
 * two-line module that loads it through tsx's `tsImport` is written to the temp directory
 * (tsx is a dev dependency; production never takes this path). piscina needs a file, not code.
 */
function workerFile(compiled: URL): string {
  const compiledPath = fileURLToPath(compiled);
  if (existsSync(compiledPath)) return compiledPath;
  const source = new URL(compiled.href.replace(/\.js$/, ".ts")).href;
  const tsx = import.meta.resolve("tsx/esm/api");
  const code =
    `const api = await import(${JSON.stringify(tsx)});\n` +
    `export default (await api.tsImport(${JSON.stringify(source)}, ${JSON.stringify(source)})).default;\n`;
  const file = path.join(tmpdir(), `pulse-worker-${createHash("sha256").update(code).digest("hex").slice(0, 16)}.mjs`);
  if (!existsSync(file)) {
    // Written aside and renamed: test processes start pools at the same time.
    const partial = `${file}.${process.pid}.${Date.now()}`;
    writeFileSync(partial, code);
    renameSync(partial, file);
  }
  return file;
}

/** piscina's errors carry no code: an aborted task, and a full queue, by their names and words. */
export const isAborted = (err: unknown) => err instanceof Error && err.name === "AbortError";
export const isQueueFull = (err: unknown) => err instanceof Error && /queue is at limit|No task queue available/.test(err.message);
