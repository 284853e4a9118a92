// Password hashing with bcrypt (bcryptjs: pure JS, no native build), in a small pool of
// worker threads: a burst of logins or sign-ups must not stall every other request.

import bcrypt from "bcryptjs";
import type { Piscina } from "piscina";

import { createThreadPool } from "../threads.js";
import type { PasswordTask } from "./password-worker.js";

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 8;

// Compared against when the account does not exist, so an unknown email costs the same time
// as a wrong password and response times do not reveal which emails are registered.
const DUMMY_HASH = bcrypt.hashSync("pulse-dummy-password", 10);

export interface PasswordHasher {
  hash(password: string, rounds: number): Promise<string>;
  /** False for a null hash (no such account), after the same work as a wrong password. */
  verify(password: string, hash: string | null): Promise<boolean>;
  close(): Promise<void>;
}

/** Threads start on the first hash, so a process that never hashes (a CLI, most tests) pays
 * nothing. Requests beyond the queue wait in the pool's queue: login and sign-up rate limits,
 * not this pool, bound how many arrive. */
export function createPasswordHasher(options: { threads: number }): PasswordHasher {
  let pool: Piscina | undefined;
  const run = (task: PasswordTask) =>
    (pool ??= createThreadPool(new URL("./password-worker.js", import.meta.url), { threads: options.threads, maxQueue: Infinity })).run(task);
  return {
    hash: async (password, rounds) => (await run({ op: "hash", password, rounds })) as string,
    async verify(password, hash) {
      const ok = (await run({ op: "compare", password, hash: hash ?? DUMMY_HASH })) as boolean;
      return ok && hash !== null;
    },
    async close() {
      await pool?.destroy();
      pool = undefined;
    },
  };
}
