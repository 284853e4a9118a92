// Password hashing with bcrypt (bcryptjs: pure JS, no native build), in a small pool of
// worker threads: a burst of logins or sign-ups must not stall every other request.

import bcrypt from "bcryptjs";
import type { Piscina } from "piscina";

import { DomainError } from "../errors.js";
import type { Logger } from "../logger.js";
import { createThreadPool } from "../threads.js";
import type { PasswordTask } from "./password-worker.js";

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

/** Far above a hash at the highest cost allowed (BCRYPT_ROUNDS=15: a few seconds) plus a
 * burst's wait: only a pool that cannot run at all gets there. */
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

/** Tasks waiting for a thread at most: about 6 s of work for two threads at the default cost.
 * Past it a login answers 503 at once rather than wait behind a flood (the rate limits bound
 * what each client and account can add; this bounds them all together). */
const MAX_QUEUED_TASKS = 256;

/** Threads start on the first hash, so a process that never hashes (a CLI, most tests) pays
 * nothing. */
export function createPasswordHasher(options: { threads: number; rounds: number; logger: Logger }): PasswordHasher {
  let pool: Piscina | undefined;
  // At the cost of real hashes, so that an unknown email takes as long as a wrong password and
  // response times do not reveal which emails are registered.
  let standIn: Promise<string> | undefined;
  const onError = (err: unknown) => options.logger.error({ err }, "a password hashing thread failed");
  const run = async (task: PasswordTask) => {
    pool ??= createThreadPool(new URL("./password-worker.js", import.meta.url), { threads: options.threads, maxQueue: Infinity }, onError);
    // A flood, not a fault: nothing to log.
    if (pool.queueSize >= MAX_QUEUED_TASKS) throw new DomainError("unavailable", "Too many passwords are being checked right now; try again in a few seconds");
    try {
      return (await pool.run(task, { signal: AbortSignal.timeout(TASK_TIMEOUT_MS) })) as unknown;
    } catch (err) {
      onError(err);
      throw new DomainError("unavailable", "Passwords cannot be checked right now; try again later");
    }
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
