// The interactive budgets of this process: one per target database, shared by every saved
// connection (of any user) that reaches it, and one per user across all their connections.
// Connectors hold them while open; a budget nobody holds is forgotten once it remembers
// nothing (no statement running or waiting, its bucket full again), so closing and reopening
// a connector never hands out a fresh allowance, and the maps never grow past what is in use.

import { createBudget, nestedBudget, type Budget, type BudgetLimits, type StatementBudget } from "./budget.js";

export interface SharedBudgetOptions {
  /** Each target database's budget across the deployment... */
  target: BudgetLimits;
  /** ...and each user's, across all their connections... */
  user: BudgetLimits;
  /** ...shared equally by this many live instances (read on every statement). */
  instances: () => number;
  now?: () => number;
}

export class SharedBudgets {
  private readonly targets;
  private readonly users;
  /** The longest a statement waits for its slots, both budgets' waits together. */
  private readonly maxWaitMs: number;

  constructor(options: SharedBudgetOptions) {
    this.maxWaitMs = Math.max(options.target.maxWaitMs, options.user.maxWaitMs);
    const now = options.now ?? Date.now;
    this.targets = new HeldBudgets<string>(() => createBudget(options.target, now, options.instances, "this database"));
    this.users = new HeldBudgets<number>(() => createBudget(options.user, now, options.instances, "your connections"));
  }

  /** What a connector of `userId` to the database `targetKey` charges its statements to: the
   * user's budget, then the database's. Held until release() with the same arguments. */
  hold(targetKey: string, userId: number): StatementBudget {
    return nestedBudget(this.users.hold(userId), this.targets.hold(targetKey), this.maxWaitMs);
  }

  release(targetKey: string, userId: number): void {
    this.targets.release(targetKey);
    this.users.release(userId);
  }

  /** Forgets the budgets that nobody holds and that have come to rest since their release. */
  sweep(): void {
    this.targets.sweep();
    this.users.sweep();
  }

  /** Budgets remembered, for tests. */
  get size() {
    return { targets: this.targets.size, users: this.users.size };
  }
}

/** Budgets by key, counting their holders. */
class HeldBudgets<K> {
  private readonly entries = new Map<K, { budget: Budget; holders: number }>();
  /** Released by their last holder while not at rest. */
  private readonly unheld = new Set<K>();

  constructor(private readonly make: () => Budget) {}

  get size() {
    return this.entries.size;
  }

  hold(key: K): Budget {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { budget: this.make(), holders: 0 };
      this.entries.set(key, entry);
    }
    entry.holders += 1;
    this.unheld.delete(key);
    return entry.budget;
  }

  release(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.holders -= 1;
    if (entry.holders > 0) return;
    if (entry.budget.atRest()) this.entries.delete(key);
    else this.unheld.add(key);
  }

  sweep(): void {
    for (const key of this.unheld) {
      if (this.entries.get(key)?.budget.atRest() !== false) {
        this.entries.delete(key);
        this.unheld.delete(key);
      }
    }
  }
}
