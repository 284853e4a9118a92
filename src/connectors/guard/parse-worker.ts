// Runs in a worker thread of the statement guard's pool (statement-guard.ts): the parse and
// rules of one long statement, away from the event loop, where a parse that runs away can be
// stopped by ending the thread.

import type { Dialect } from "../types.js";
import { classifyUncached, loadGuard } from "./index.js";
import type { GuardVerdict } from "./verdict.js";

export interface ParseTask {
  dialect: Dialect;
  sql: string;
}

await loadGuard();

export default function classifyInWorker(task: ParseTask): GuardVerdict {
  return classifyUncached(task.dialect, task.sql);
}
