import { afterEach, describe, expect, it, vi } from "vitest";

import { ConnectFailures, UnreachableTooOftenError } from "../../src/connectors/connect-failures.js";
import { DomainError, RateLimitedError } from "../../src/errors.js";

/** Failures of connections 1 and 2 of owner 7, counted against a limit of one a minute. */
function failuresWithLimitOne() {
  let counted = 0;
  const failures = new ConnectFailures(async () => {
    if (++counted > 1) throw new RateLimitedError("too many", 30);
  });
  return { failures, counted: () => counted };
}

const unreachable = () => new DomainError("connection_failed", "could not connect to db.example:5432: connection refused");

afterEach(() => {
  vi.useRealTimers();
});

describe("ConnectFailures", () => {
  it("counts connections that could not be made, and answers the one past the limit as refused", async () => {
    const { failures, counted } = failuresWithLimitOne();
    const err = unreachable();
    expect(await failures.failure(1, 7, err)).toBe(err);
    expect(() => failures.refuse(1)).not.toThrow(); // the owner is not past the limit
    const statementError = new DomainError("sql_failed", "relation does not exist");
    expect(await failures.failure(2, 7, statementError)).toBe(statementError);
    expect(counted()).toBe(1);

    const refused = await failures.failure(1, 7, unreachable());
    expect(refused).toBeInstanceOf(UnreachableTooOftenError);
    expect((refused as UnreachableTooOftenError).retryAfterSeconds).toBe(30);
    expect(() => failures.refuse(1)).toThrow(UnreachableTooOftenError);
    expect(() => failures.refuse(2)).not.toThrow(); // its last connection did not fail
    expect(counted()).toBe(2); // a refusal is not counted
  });

  it("is not forgotten for work begun before the failure, and is once work begun after it succeeds", async () => {
    const { failures } = failuresWithLimitOne();
    await failures.failure(1, 7, unreachable());
    const before = performance.now();
    await failures.failure(1, 7, unreachable());
    failures.reached(1, before); // a long read on a connection made earlier
    expect(() => failures.refuse(1)).toThrow(UnreachableTooOftenError);

    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 31_000 });
    expect(() => failures.refuse(1)).not.toThrow(); // the window ended: tried again
    failures.reached(1, performance.now());
    expect(await failures.failure(2, 7, unreachable())).toBeInstanceOf(UnreachableTooOftenError); // still counted past the limit
    expect(() => failures.refuse(1)).not.toThrow(); // reached since
    expect(() => failures.refuse(2)).toThrow(UnreachableTooOftenError);
  });

  it("answers the database's own failure when the count cannot be kept (the session store away)", async () => {
    const failures = new ConnectFailures(async () => {
      throw new DomainError("sessions_unavailable", "Sessions are unavailable: Redis cannot be reached; retry shortly");
    });
    const err = unreachable();
    expect(await failures.failure(1, 7, err)).toBe(err);
    expect(() => failures.refuse(1)).not.toThrow();
  });
});
