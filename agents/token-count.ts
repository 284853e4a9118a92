// Token counts for servers that report no usage (llama-cpp-python's streams, proxies that drop
// it): o200k_base counted locally, offline, and always reported as an estimate. A local model's
// own tokenizer differs; the count is of the same order, not the same number.
//
// Counted in a worker thread (token-count-worker.ts): building the encoder held the event loop
// for about a second, and counting a question of 2,000 "中" for 3.9 s. The thread starts on the
// first count, so a process whose server reports usage never pays for it.

import type { Piscina } from "piscina";

import { createThreadPool } from "../src/threads.js";
import { estimateTokens } from "./schema-index.js";

/** Far above a count (tens of ms) and the thread's start (about a second): only a thread that
 * cannot run gets there. */
const TASK_TIMEOUT_MS = 10_000;
/** Counts waiting at most; past it (or on any failure) the cheap estimate is used instead. */
const MAX_QUEUED = 64;

let pool: Piscina | undefined;

/** The tokens of each text; estimateTokens' if the thread cannot count them. */
export async function countTokens(texts: string[]): Promise<number[]> {
  try {
    // A thread that fails idle is replaced on the next count; its error changes no answer.
    pool ??= createThreadPool(new URL("./token-count-worker.js", import.meta.url), { threads: 1, maxQueue: MAX_QUEUED, maxHeapMb: 256 }, () => undefined);
    return (await pool.run(texts, { signal: AbortSignal.timeout(TASK_TIMEOUT_MS) })) as number[];
  } catch {
    return texts.map(estimateTokens);
  }
}

/** Chat formats add a few tokens around each message (role markers, separators). */
export const TOKENS_PER_MESSAGE = 4;
