// A query budget (of a target database, or of a user): a concurrency limit with a short,
// bounded wait queue, and a queries-per-minute token bucket. Over budget is an immediate,
// explicit refusal: never an unbounded queue building up in front of a customer database. The
// limits are the whole deployment's: with n instances live, each takes an equal share of them.

import { RateLimitedError } from "../errors.js";

export interface BudgetLimits {
  /** Statements running at once. */
  concurrency: number;
  /** Statements started per minute (token bucket of this capacity, refilled continuously). */
  perMinute: number;
  /** Callers allowed to wait for a free slot; beyond this they are refused at once. */
  maxWaiting: number;
  /** How long a waiting caller waits for a slot before being refused. */
  maxWaitMs: number;
}

export type Release = () => void;

/** What a statement takes: charge() as soon as it arrives, enter() once it may run. */
export interface StatementBudget {
  /** Takes one statement from the per-minute allowance, whether or not it will run (a refused
   * statement cost its parse); throws budget_exceeded when it is spent. */
  charge(): void;
  /** Resolves with a release function once a slot is free, for a statement already charged;
   * rejects with budget_exceeded. Waits at most the budget's maxWaitMs, or `waitAtMostMs` if
   * shorter (what is left of a wait that began at another budget). */
  enter(waitAtMostMs?: number): Promise<Release>;
}

export interface Budget extends StatementBudget {
  /** charge() then enter(): a statement that will run. */
  acquire(): Promise<Release>;
  readonly running: number;
  readonly waiting: number;
  /** Nothing running or waiting and the bucket full again: forgetting this budget now and
   * making a new one later changes nothing. */
  atRest(): boolean;
}

/** This instance's part of `limits` when `instances` share them. Concurrency rounds down and
 * the bucket holds at least one token, so no instance is ever locked out: with more instances
 * than the limit, the deployment may go over it by one statement per instance. */
export function shareOf(limits: Pick<BudgetLimits, "concurrency" | "perMinute">, instances: number) {
  const n = Math.max(1, instances);
  const perMinute = limits.perMinute / n;
  return { concurrency: Math.max(1, Math.floor(limits.concurrency / n)), perMinute, capacity: Math.max(1, perMinute) };
}

/**
 * `subject` names what the budget limits in its refusals ("this database", "your connections").
 * `instances` is read on every acquire (it is the last count of live instances, kept without a
 * round trip), so a change applies at once: running statements go on, a smaller share admits
 * no one until enough have finished, and tokens above the new capacity are dropped.
 */
export function createBudget(
  limits: BudgetLimits,
  now: () => number = Date.now,
  instances: () => number = () => 1,
  subject = "this database",
  sharers: Sharers = "instances",
): Budget {
  let running = 0;
  // Full; clipped to this instance's share at the first statement.
  let tokens = limits.perMinute;
  let refilledAt = now();
  const waiters: { grant: (release: Release) => void; timer: NodeJS.Timeout }[] = [];
  let share = { instances: 1, ...shareOf(limits, 1) };
  // Recomputed only when the count changes: this runs on every statement.
  const currentShare = () => {
    const n = instances();
    if (n !== share.instances) share = { instances: n, ...shareOf(limits, n) };
    return share;
  };

  const takeToken = () => {
    const { perMinute, capacity } = share;
    const t = now();
    tokens = Math.min(capacity, tokens + ((t - refilledAt) / 60_000) * perMinute);
    refilledAt = t;
    if (tokens < 1) {
      const waitSeconds = Math.ceil(((1 - tokens) / perMinute) * 60);
      throw new RateLimitedError(
        `Query budget of ${subject} is spent (${shareText(`${limits.perMinute} per minute`, share.instances, sharers)}); try again in ${waitSeconds} s`,
        waitSeconds,
        "budget_exceeded",
      );
    }
    tokens -= 1;
  };

  /** Hands free slots to waiters, oldest first. */
  const admit = () => {
    while (running < share.concurrency && waiters.length > 0) {
      const next = waiters.shift()!;
      clearTimeout(next.timer);
      running += 1;
      next.grant(once(release));
    }
  };

  const release: Release = () => {
    running -= 1;
    currentShare();
    admit();
  };

  const charge = () => {
    currentShare();
    takeToken();
  };

  const enter = (waitAtMostMs = Number.POSITIVE_INFINITY): Promise<Release> => {
    currentShare();
    // A share grown since the last release may have left waiters behind free slots.
    admit();
    if (running < share.concurrency && waiters.length === 0) {
      running += 1;
      return Promise.resolve(once(release));
    }
    const waitMs = Math.min(limits.maxWaitMs, waitAtMostMs);
    if (waiters.length >= limits.maxWaiting || waitMs <= 0) {
      return Promise.reject(busy(subject, limits, share, sharers));
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(busy(subject, limits, currentShare(), sharers));
        }, waitMs),
      };
      waiters.push(waiter);
    });
  };

  return {
    get running() {
      return running;
    },
    get waiting() {
      return waiters.length;
    },
    charge,
    enter,
    acquire() {
      charge();
      return enter();
    },
    atRest() {
      if (running > 0 || waiters.length > 0) return false;
      const { perMinute, capacity } = currentShare();
      return tokens + ((now() - refilledAt) / 60_000) * perMinute >= capacity;
    },
  };
}

/**
 * Both budgets for each statement: `outer`'s charge and slot first, then `inner`'s. Always in
 * this order, so no two statements wait on each other; a refusal by `inner` gives back
 * `outer`'s slot at once (its charge stays spent, like any refused statement's). Outer is the
 * user's budget: a statement that waits for its database holds its own user's slot, never one
 * that another user needs. The two waits together last at most `maxWaitMs` (each budget's own
 * bound applies too): a wait for the user's slot leaves only the rest for the database's.
 */
export function nestedBudget(outer: StatementBudget, inner: StatementBudget, maxWaitMs = Number.POSITIVE_INFINITY): StatementBudget {
  return {
    charge() {
      outer.charge();
      inner.charge();
    },
    enter(waitAtMostMs = maxWaitMs) {
      const started = Date.now();
      return outer.enter(waitAtMostMs).then((releaseOuter) =>
        inner.enter(waitAtMostMs - (Date.now() - started)).then(
          (releaseInner) => () => {
            releaseInner();
            releaseOuter();
          },
          (err: unknown) => {
            releaseOuter();
            throw err;
          },
        ),
      );
    },
  };
}

/** What divides a budget equally (`instances` in createBudget counts them): the live instances
 * of the deployment, or the users whose checks use one database (monitoring/runtime.ts). */
export type Sharers = "instances" | "users";

/** A limit in a refusal, naming the division when there is one so the number adds up. */
const shareText = (limit: string, n: number, sharers: Sharers) =>
  n <= 1 ? limit : sharers === "instances" ? `this instance's share of ${limit} across ${n} instances` : `your share of ${limit} across ${n} users`;

const busy = (subject: string, limits: BudgetLimits, share: { instances: number; concurrency: number }, sharers: Sharers) => {
  const divided = share.instances > 1 ? ` (${shareText(String(limits.concurrency), share.instances, sharers)})` : "";
  return new RateLimitedError(
    `Too many statements on ${subject}: ${share.concurrency} running${divided} and ${limits.maxWaiting} waiting; try again shortly`,
    1,
    "budget_exceeded",
  );
};

/** A release that only counts once, whatever the caller does. */
function once(fn: Release): Release {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
