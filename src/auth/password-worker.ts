// Runs in a worker thread of the password pool (passwords.ts): bcrypt is deliberately slow
// (tens of milliseconds per hash at the default cost), so it never runs on the event loop.

import bcrypt from "bcryptjs";

export type PasswordTask = { op: "hash"; password: string; rounds: number } | { op: "compare"; password: string; hash: string };

export default function runPasswordTask(task: PasswordTask): Promise<string | boolean> {
  return task.op === "hash" ? bcrypt.hash(task.password, task.rounds) : bcrypt.compare(task.password, task.hash);
}
