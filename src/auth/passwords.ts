// Password hashing with bcrypt (bcryptjs: pure JS, no native build), in a small pool of
// worker threads: a burst of logins or sign-ups must not stall every other request.

import bcrypt from "bcryptjs";
import type { Piscina } from "piscina";

import { DomainError } from "../errors.js";
import type { Logger } from "../logger.js";
import { createThreadPool, isAborted } from "../threads.js";
import type { PasswordTask, PasswordTaskResult } from "./password-worker.js";

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

/** Far above the longest wait the queue lets in (MAX_EXPECTED_WAIT_MS) plus a hash at the
 * highest cost allowed (BCRYPT_ROUNDS=15: a few seconds): only a flood at a cold start, before
 * a task has been timed, or a pool that cannot run at all gets there. */
const TASK_TIMEOUT_MS = 60_000;

export interface PasswordHasher {
  /** A hash of `password` at the configured cost (BCRYPT_ROUNDS). */
  hash(password: string): Promise<string>;
  /** False for a null hash (no such account), after the same work as a wrong password. */
  verify(password: string, hash: string | null): Promise<boolean>;
  /** Whether `hash` was made at another cost than the configured one: its password, once
   * proven, is worth hashing again, so that every account costs the same to check. */
  outdated(hash: string): boolean;
  /** What a password is checked against when the account does not exist: a hash at the
   * configured cost, made on first need. */
  standInHash(): Promise<string>;
  close(): Promise<void>;
}

/** A task is refused (503 at once) rather than queued when those waiting ahead of it would take
 * longer than this, at the average time a task has taken lately on each thread: the queue's
 * bound follows BCRYPT_ROUNDS and PASSWORD_HASH_THREADS. The rate limits bound what each client
 * and account can add; this bounds them all together. */
const MAX_EXPECTED_WAIT_MS = 5_000;
/** Tasks per thread that may always wait, whatever the cost and the machine's load: a burst of
 * a few logins at once is never refused, nor is the queue shut by a first, cold hash. */
const MIN_QUEUED_PER_THREAD = 10;
/** Tasks that may wait at most, before any has been timed (a flood on a fresh process) too. */
const MAX_QUEUED_TASKS = 256;
/** Weight of the latest task in the moving average of their durations. */
const AVERAGE_WEIGHT = 0.2;
const FLOOD = "Too many passwords are being checked right now; try again in a few seconds";

/** Threads start on the first hash, so a process that never hashes (a CLI, most tests) pays
 * nothing. */
export function createPasswordHasher(options: { threads: number; rounds: number; logger: Logger }): PasswordHasher {
  let pool: Piscina | undefined;
  // At the cost of real hashes, so that an unknown email takes as long as a wrong password and
  // response times do not reveal which emails are registered.
  let standIn: Promise<string> | undefined;
  /** Moving average of how long a task runs, once one has. */
  let averageMs: number | undefined;
  const onError = (err: unknown) => options.logger.error({ err }, "a password hashing thread failed");
  const flooded = (queued: number) =>
    queued >= MAX_QUEUED_TASKS || (queued >= MIN_QUEUED_PER_THREAD * options.threads && averageMs !== undefined && (queued * averageMs) / options.threads > MAX_EXPECTED_WAIT_MS);
  const run = async (task: PasswordTask) => {
    pool ??= createThreadPool(new URL("./password-worker.js", import.meta.url), { threads: options.threads, maxQueue: Infinity }, onError);
    // A flood, not a fault: nothing to log.
    if (flooded(pool.queueSize)) throw new DomainError("unavailable", FLOOD);
    let result: PasswordTaskResult;
    try {
      result = (await pool.run(task, { signal: AbortSignal.timeout(TASK_TIMEOUT_MS) })) as PasswordTaskResult;
    } catch (err) {
      // Timed out, behind a flood that came before a task had been timed: a flood too.
      if (isAborted(err)) throw new DomainError("unavailable", FLOOD);
      onError(err);
      throw new DomainError("unavailable", "Passwords cannot be checked right now; try again later");
    }
    averageMs = averageMs === undefined ? result.ms : averageMs + AVERAGE_WEIGHT * (result.ms - averageMs);
    return result.value;
  };
  const hash = async (password: string) => (await run({ op: "hash", password, rounds: options.rounds })) as string;
  const standInHash = () =>
    (standIn ??= hash("pulse-stand-in-password").catch((err: unknown) => {
      // Made again on the next need.
      standIn = undefined;
      throw err;
    }));
  return {
    hash,
    async verify(password, stored) {
      const ok = (await run({ op: "compare", password, hash: stored ?? (await standInHash()) })) as boolean;
      return ok && stored !== null;
    },
    outdated: (stored) => bcrypt.getRounds(stored) !== options.rounds,
    standInHash,
    async close() {
      await pool?.destroy();
      pool = undefined;
    },
  };
}
