// One user's questions under way at once in this instance (ASK_MAX_CONCURRENT), however they
// are asked: POST /ask or the MCP `ask` tool. Each holds an agent run, its model request and
// its answer in memory until its client has it; ASK_PER_MINUTE alone let one user keep some
// forty runs going at once.

import { counted } from "./counted.js";
import { RateLimitedError } from "./errors.js";

export class AskTurns {
  private readonly asking = new Map<number, number>();

  constructor(private readonly maxConcurrent: number) {}

  /** One of `userId`'s turns, or 429; returns its release (once is enough, twice is harmless). */
  take(userId: number): () => void {
    const now = this.asking.get(userId) ?? 0;
    if (now >= this.maxConcurrent) {
      throw new RateLimitedError(`At most ${counted(this.maxConcurrent, "question")} at once per user (ASK_MAX_CONCURRENT); wait for one to be answered`, 1);
    }
    this.asking.set(userId, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.asking.get(userId) ?? 1) - 1;
      if (left === 0) this.asking.delete(userId);
      else this.asking.set(userId, left);
    };
  }
}
