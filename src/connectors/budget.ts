// Per-connection query budget: a concurrency limit with a short, bounded wait queue, and a
// queries-per-minute token bucket. Over budget is an immediate, explicit refusal: never an
// unbounded queue building up in front of a customer database.

import { RateLimitedError } from "../errors.js";

export interface BudgetLimits {
  /** Statements running at once on this connection. */
  concurrency: number;
  /** Statements started per minute (token bucket of this capacity, refilled continuously). */
  perMinute: number;
  /** Callers allowed to wait for a free slot; beyond this they are refused at once. */
  maxWaiting: number;
  /** How long a waiting caller waits for a slot before being refused. */
  maxWaitMs: number;
}

export type Release = () => void;

export interface Budget {
  /** Resolves with a release function once a slot is free; rejects with budget_exceeded. */
  acquire(): Promise<Release>;
  readonly running: number;
  readonly waiting: number;
}

export function createBudget(limits: BudgetLimits, now: () => number = Date.now): Budget {
  let running = 0;
  let tokens = limits.perMinute;
  let refilledAt = now();
  const waiters: { grant: (release: Release) => void; timer: NodeJS.Timeout }[] = [];

  const takeToken = () => {
    const t = now();
    tokens = Math.min(limits.perMinute, tokens + ((t - refilledAt) / 60_000) * limits.perMinute);
    refilledAt = t;
    if (tokens < 1) {
      const waitSeconds = Math.ceil(((1 - tokens) / limits.perMinute) * 60);
      throw new RateLimitedError(
        `Query budget of this connection is spent (${limits.perMinute} per minute); try again in ${waitSeconds} s`,
        waitSeconds,
        "budget_exceeded",
      );
    }
    tokens -= 1;
  };

  const release: Release = () => {
    const next = waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      next.grant(once(release));
    } else {
      running -= 1;
    }
  };

  return {
    get running() {
      return running;
    },
    get waiting() {
      return waiters.length;
    },
    acquire() {
      takeToken();
      if (running < limits.concurrency) {
        running += 1;
        return Promise.resolve(once(release));
      }
      if (waiters.length >= limits.maxWaiting) {
        return Promise.reject(busy(limits));
      }
      return new Promise<Release>((resolve, reject) => {
        const waiter = {
          grant: resolve,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(busy(limits));
          }, limits.maxWaitMs),
        };
        waiters.push(waiter);
      });
    },
  };
}

const busy = (limits: BudgetLimits) =>
  new RateLimitedError(
    `This connection is busy: ${limits.concurrency} statements are running and ${limits.maxWaiting} waiting; try again shortly`,
    1,
    "budget_exceeded",
  );

/** A release that only counts once, whatever the caller does. */
function once(fn: Release): Release {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
