import { describe, expect, it, vi } from "vitest";

import { createBudget, nestedBudget, shareOf, type Budget, type BudgetLimits, type Release } from "../../src/connectors/budget.js";
import { RateLimitedError } from "../../src/errors.js";

const MIN = 60_000;

/** A budget on a clock and an instance count the test moves by hand. */
function budgetOf(limits: Partial<BudgetLimits>, instances = 1, world = { now: 0, instances }, subject?: string) {
  const budget = createBudget(
    { concurrency: 100, perMinute: 1000, maxWaiting: 0, maxWaitMs: 60_000, ...limits },
    () => world.now,
    () => world.instances,
    subject,
  );
  return { budget, world };
}

/** Acquires and releases at once, `n` times; the outcome of each ("ok" or the refusal). */
async function starts(budget: Budget, n: number): Promise<(string | RateLimitedError)[]> {
  const outcomes: (string | RateLimitedError)[] = [];
  for (let i = 0; i < n; i++) {
    try {
      (await budget.acquire())();
      outcomes.push("ok");
    } catch (err) {
      if (!(err instanceof RateLimitedError)) throw err;
      outcomes.push(err);
    }
  }
  return outcomes;
}

const refusal = (outcome: string | RateLimitedError | undefined) => {
  if (!(outcome instanceof RateLimitedError)) throw new Error(`expected a refusal, got ${String(outcome)}`);
  return outcome;
};

/** Lets granted waiters' promises settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("shareOf", () => {
  it.each<[string, number, number, number, { concurrency: number; perMinute: number; capacity: number }]>([
    ["one instance takes everything", 4, 600, 1, { concurrency: 4, perMinute: 600, capacity: 600 }],
    ["two split evenly", 4, 600, 2, { concurrency: 2, perMinute: 300, capacity: 300 }],
    ["concurrency rounds down", 5, 600, 2, { concurrency: 2, perMinute: 300, capacity: 300 }],
    ["three of four statements", 4, 600, 3, { concurrency: 1, perMinute: 200, capacity: 200 }],
    ["concurrency never drops below one", 4, 600, 10, { concurrency: 1, perMinute: 60, capacity: 60 }],
    ["a rate that does not divide stays fractional", 5, 5, 2, { concurrency: 2, perMinute: 2.5, capacity: 2.5 }],
    ["the bucket holds at least one token", 1, 1, 4, { concurrency: 1, perMinute: 0.25, capacity: 1 }],
    ["a count under one counts as one", 4, 600, 0, { concurrency: 4, perMinute: 600, capacity: 600 }],
  ])("%s", (_name, concurrency, perMinute, instances, expected) => {
    expect(shareOf({ concurrency, perMinute }, instances)).toEqual(expected);
  });
});

describe("queries per minute", () => {
  it("allows the whole budget to one instance, in the words it always used", async () => {
    const { budget } = budgetOf({ perMinute: 3 });
    const outcomes = await starts(budget, 4);
    expect(outcomes.slice(0, 3)).toEqual(["ok", "ok", "ok"]);
    expect(refusal(outcomes[3]).message).toBe("Query budget of this database is spent (3 per minute); try again in 20 s");
    expect(refusal(outcomes[3]).code).toBe("budget_exceeded");
  });

  it("allows each of two instances half, says so, and refills at half the rate", async () => {
    const { budget, world } = budgetOf({ perMinute: 4 }, 2);
    const outcomes = await starts(budget, 3);
    expect(outcomes.slice(0, 2)).toEqual(["ok", "ok"]);
    expect(refusal(outcomes[2]).message).toBe(
      "Query budget of this database is spent (this instance's share of 4 per minute across 2 instances); try again in 30 s",
    );
    expect(refusal(outcomes[2]).retryAfterSeconds).toBe(30);
    world.now += 29_000;
    expect(await starts(budget, 1)).toEqual([expect.any(RateLimitedError)]);
    world.now += 1_000;
    expect(await starts(budget, 1)).toEqual(["ok"]);
  });

  it("drops tokens above a share that shrank", async () => {
    const { budget, world } = budgetOf({ perMinute: 10 });
    expect(await starts(budget, 1)).toEqual(["ok"]);
    world.instances = 5;
    expect((await starts(budget, 3)).map((o) => o === "ok")).toEqual([true, true, false]);
  });

  it("refills up to a share that grew, at its rate, without granting tokens at once", async () => {
    const { budget, world } = budgetOf({ perMinute: 4 }, 2);
    expect((await starts(budget, 3)).map((o) => o === "ok")).toEqual([true, true, false]);
    world.instances = 1;
    expect((await starts(budget, 1)).map((o) => o === "ok")).toEqual([false]);
    world.now += MIN;
    expect((await starts(budget, 5)).map((o) => o === "ok")).toEqual([true, true, true, true, false]);
  });

  it("lets a share under one per minute through now and then", async () => {
    const { budget, world } = budgetOf({ perMinute: 1 }, 2);
    const outcomes = await starts(budget, 2);
    expect(outcomes[0]).toBe("ok");
    expect(refusal(outcomes[1]).retryAfterSeconds).toBe(120);
    world.now += 2 * MIN;
    expect(await starts(budget, 1)).toEqual(["ok"]);
  });
});

describe("concurrency", () => {
  it("runs this instance's share at once, queues up to maxWaiting, and refuses beyond, saying so", async () => {
    const { budget } = budgetOf({ concurrency: 4, maxWaiting: 1 }, 2);
    const running = [await budget.acquire(), await budget.acquire()];
    const waiting = budget.acquire();
    expect([budget.running, budget.waiting]).toEqual([2, 1]);
    await expect(budget.acquire()).rejects.toThrow(
      "Too many statements on this database: 2 running (this instance's share of 4 across 2 instances) and 1 waiting; try again shortly",
    );
    running[0]!();
    (await waiting)();
    running[1]!();
    expect([budget.running, budget.waiting]).toEqual([0, 0]);
  });

  it("keeps the whole-budget refusal of one instance", async () => {
    const { budget } = budgetOf({ concurrency: 1, maxWaiting: 0 });
    const release = await budget.acquire();
    await expect(budget.acquire()).rejects.toThrow("Too many statements on this database: 1 running and 0 waiting; try again shortly");
    release();
  });

  it("lets running statements finish when the share shrinks, admitting no one until under it", async () => {
    const { budget, world } = budgetOf({ concurrency: 4, maxWaiting: 4 });
    const running: Release[] = [];
    for (let i = 0; i < 4; i++) running.push(await budget.acquire());
    world.instances = 2;
    let admitted = false;
    const waiting = budget.acquire().then((release) => {
      admitted = true;
      return release;
    });
    expect([budget.running, budget.waiting]).toEqual([4, 1]);
    running.pop()!();
    running.pop()!();
    await settle();
    expect([admitted, budget.running]).toEqual([false, 2]);
    running.pop()!();
    await settle();
    expect([admitted, budget.running]).toEqual([true, 2]);
    (await waiting)();
    running.pop()!();
    expect([budget.running, budget.waiting]).toEqual([0, 0]);
  });

  it("admits waiters first when the share grows, before a newcomer", async () => {
    const { budget, world } = budgetOf({ concurrency: 2, maxWaiting: 4 }, 2);
    const first = await budget.acquire();
    const waiter = budget.acquire();
    expect([budget.running, budget.waiting]).toEqual([1, 1]);
    world.instances = 1;
    const newcomer = budget.acquire();
    expect([budget.running, budget.waiting]).toEqual([2, 1]);
    (await waiter)();
    (await newcomer)();
    first();
    expect([budget.running, budget.waiting]).toEqual([0, 0]);
  });
});

describe("charge and enter: statements that never run pay too", () => {
  it("takes a token per charge, so refused statements spend the per-minute budget", async () => {
    const { budget } = budgetOf({ perMinute: 3 });
    budget.charge();
    budget.charge();
    expect(await starts(budget, 2)).toEqual(["ok", expect.any(RateLimitedError)]);
    expect(() => budget.charge()).toThrow(/Query budget of this database is spent/);
  });

  it("admits a charged statement without taking another token", async () => {
    const { budget } = budgetOf({ perMinute: 1, concurrency: 1 });
    budget.charge();
    const release = await budget.enter();
    expect(budget.running).toBe(1);
    release();
    expect(budget.running).toBe(0);
  });
});

describe("atRest: whether forgetting a budget would change anything", () => {
  it("is at rest when new, not while a statement runs or waits, nor until its bucket has refilled", async () => {
    const { budget, world } = budgetOf({ perMinute: 2, concurrency: 1, maxWaiting: 1 });
    expect(budget.atRest()).toBe(true);
    const release = await budget.acquire();
    const waiting = budget.acquire();
    expect(budget.atRest()).toBe(false);
    release();
    (await waiting)();
    expect(budget.atRest()).toBe(false); // two tokens spent
    world.now += MIN / 2;
    expect(budget.atRest()).toBe(false);
    world.now += MIN / 2;
    expect(budget.atRest()).toBe(true);
  });
});

describe("nestedBudget: a user's budget, then a database's", () => {
  /** A user's and a database's budget on one clock, and the two nested. */
  function userAndDatabase(user: Partial<BudgetLimits>, database: Partial<BudgetLimits>) {
    const world = { now: 0, instances: 1 };
    const outer = budgetOf(user, 1, world, "your connections").budget;
    const inner = budgetOf(database, 1, world, "this database").budget;
    return { outer, inner, both: nestedBudget(outer, inner) };
  }
  const enterBoth = async (both: { charge(): void; enter(): Promise<Release> }) => {
    both.charge();
    return both.enter();
  };

  it("takes a slot of each and gives both back", async () => {
    const { outer, inner, both } = userAndDatabase({ concurrency: 2 }, { concurrency: 2 });
    const release = await enterBoth(both);
    expect([outer.running, inner.running]).toEqual([1, 1]);
    release();
    release();
    expect([outer.running, inner.running]).toEqual([0, 0]);
  });

  it("refuses in the user's words when the user's slots are taken, touching no database slot", async () => {
    const { outer, inner, both } = userAndDatabase({ concurrency: 1 }, { concurrency: 5 });
    const release = await enterBoth(both);
    await expect(enterBoth(both)).rejects.toThrow("Too many statements on your connections: 1 running and 0 waiting; try again shortly");
    expect([outer.running, inner.running]).toEqual([1, 1]);
    release();
  });

  it("gives the user's slot back when the database refuses, so no slot leaks", async () => {
    const { outer, inner, both } = userAndDatabase({ concurrency: 5 }, { concurrency: 1 });
    const release = await enterBoth(both);
    for (let i = 0; i < 3; i++) {
      await expect(enterBoth(both)).rejects.toThrow("Too many statements on this database: 1 running and 0 waiting; try again shortly");
    }
    expect([outer.running, inner.running]).toEqual([1, 1]);
    release();
    expect([outer.running, inner.running]).toEqual([0, 0]);
  });

  it("charges the user first: a statement the database's bucket refuses still costs the user", () => {
    const { outer, inner, both } = userAndDatabase({ perMinute: 3 }, { perMinute: 1 });
    both.charge();
    expect(() => both.charge()).toThrow(/Query budget of this database is spent/);
    expect(() => outer.charge()).not.toThrow();
    expect(() => outer.charge()).toThrow(/Query budget of your connections is spent/);
    expect(() => inner.charge()).toThrow(/this database/);
  });

  it("waits at most maxWaitMs for both slots together, not for each in turn", async () => {
    vi.useFakeTimers();
    try {
      const world = { now: 0, instances: 1 };
      const user = budgetOf({ concurrency: 1, maxWaiting: 1, maxWaitMs: 1000 }, 1, world, "your connections").budget;
      const database = budgetOf({ concurrency: 1, maxWaiting: 1, maxWaitMs: 1000 }, 1, world).budget;
      const releaseUser = await user.acquire(); // the user's other statement
      const releaseDatabase = await database.acquire(); // another user's statement on the database
      const both = nestedBudget(user, database, 1000);
      both.charge();
      let outcome: unknown = "waiting";
      both.enter().then(
        () => (outcome = "entered"),
        (err: unknown) => (outcome = err),
      );
      await vi.advanceTimersByTimeAsync(900);
      releaseUser(); // the user's slot frees after 900 ms: 100 ms are left for the database's
      await vi.advanceTimersByTimeAsync(150);
      expect(outcome).toBeInstanceOf(Error);
      expect(String(outcome)).toMatch(/Too many statements on this database/);
      expect([user.running, database.running, database.waiting]).toEqual([0, 1, 0]);
      releaseDatabase();
    } finally {
      vi.useRealTimers();
    }
  });

  it("lets a statement waiting for its database hold only its own user's slot, and go on when the database frees", async () => {
    const world = { now: 0, instances: 1 };
    const database = budgetOf({ concurrency: 1, maxWaiting: 4 }, 1, world).budget;
    const [alice, bob] = [0, 1].map(() => nestedBudget(budgetOf({ concurrency: 1, maxWaiting: 0 }, 1, world, "your connections").budget, database));
    const aliceRunning = await enterBoth(alice!);
    const bobWaiting = enterBoth(bob!);
    // Alice's other statements are refused by her own budget, not stuck behind Bob's.
    await expect(enterBoth(alice!)).rejects.toThrow(/^Too many statements on your connections/);
    aliceRunning();
    (await bobWaiting)();
    expect([database.running, database.waiting]).toEqual([0, 0]);
  });
});
