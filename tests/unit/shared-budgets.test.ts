import { describe, expect, it } from "vitest";

import type { BudgetLimits } from "../../src/connectors/budget.js";
import { SharedBudgets } from "../../src/connectors/shared-budgets.js";

const MIN = 60_000;
const limits = (l: Partial<BudgetLimits>): BudgetLimits => ({ concurrency: 100, perMinute: 1000, maxWaiting: 0, maxWaitMs: 1000, ...l });

/** Shared budgets on a clock the test moves by hand. */
function sharedBudgets(target: Partial<BudgetLimits>, user: Partial<BudgetLimits> = {}) {
  const world = { now: 0 };
  const budgets = new SharedBudgets({ target: limits(target), user: limits(user), instances: () => 1, now: () => world.now });
  return { budgets, world };
}

describe("SharedBudgets", () => {
  it("gives connectors of one database one budget, whoever owns them", async () => {
    const { budgets } = sharedBudgets({ concurrency: 2 });
    const [a, b, c] = [budgets.hold("db", 1), budgets.hold("db", 1), budgets.hold("db", 2)];
    a.charge();
    const first = await a.enter();
    c.charge();
    const second = await c.enter();
    b.charge();
    await expect(b.enter()).rejects.toThrow(/^Too many statements on this database: 2 running/);
    first();
    second();
    expect(budgets.size).toEqual({ targets: 1, users: 2 });
  });

  it("gives one user one budget across databases", async () => {
    const { budgets } = sharedBudgets({}, { concurrency: 1 });
    const [a, b] = [budgets.hold("db1", 7), budgets.hold("db2", 7)];
    a.charge();
    const running = await a.enter();
    b.charge();
    await expect(b.enter()).rejects.toThrow(/^Too many statements on your connections: 1 running/);
    running();
  });

  it("forgets a budget when its last holder lets go of it at rest", () => {
    const { budgets } = sharedBudgets({});
    budgets.hold("db", 1);
    budgets.hold("db", 2);
    budgets.release("db", 1);
    expect(budgets.size).toEqual({ targets: 1, users: 1 });
    budgets.release("db", 2);
    expect(budgets.size).toEqual({ targets: 0, users: 0 });
  });

  it("remembers a spent bucket after its last holder lets go, so reopening hands out no fresh allowance", () => {
    const { budgets, world } = sharedBudgets({ perMinute: 2 });
    const first = budgets.hold("db", 1);
    first.charge();
    first.charge();
    budgets.release("db", 1);
    budgets.sweep();
    expect(budgets.size.targets).toBe(1);
    expect(() => budgets.hold("db", 1).charge()).toThrow(/Query budget of this database is spent/);
    budgets.release("db", 1);
    world.now += MIN;
    budgets.sweep();
    expect(budgets.size).toEqual({ targets: 0, users: 0 });
  });

  it("keeps the budget of a statement still running on a closed connector until it ends", async () => {
    const { budgets } = sharedBudgets({ concurrency: 1 });
    const closing = budgets.hold("db", 1);
    closing.charge();
    const running = await closing.enter();
    budgets.release("db", 1);
    const reopened = budgets.hold("db", 1);
    reopened.charge();
    await expect(reopened.enter()).rejects.toThrow(/this database: 1 running/);
    running();
    budgets.release("db", 1);
    budgets.sweep();
    expect(budgets.size.targets).toBe(1); // two tokens of 1000 spent: at rest within a minute
  });
});
