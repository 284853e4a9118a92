// Runs in a worker thread of the password pool (passwords.ts): bcrypt is deliberately slow
// (tens of milliseconds per hash at the default cost), so it never runs on the event loop.

import bcrypt from "bcryptjs";

export type PasswordTask = { op: "hash"; password: string; rounds: number } | { op: "compare"; password: string; hash: string };

/** The task's answer and how long it ran (its wait for a thread excluded): the pool bounds its
 * queue by the wait this predicts. */
export interface PasswordTaskResult {
  value: string | boolean;
  ms: number;
}

export default async function runPasswordTask(task: PasswordTask): Promise<PasswordTaskResult> {
  const started = performance.now();
  const value = task.op === "hash" ? await bcrypt.hash(task.password, task.rounds) : await bcrypt.compare(task.password, task.hash);
  return { value, ms: performance.now() - started };
}
