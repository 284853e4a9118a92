// A user's questions at once (ASK_MAX_CONCURRENT): refused past the limit with a 429 that says the
// limit in words that read right for any setting, and free again once one is answered.

import { describe, expect, it } from "vitest";

import { AskTurns } from "../../src/ask-turns.js";
import { RateLimitedError } from "../../src/errors.js";

describe("AskTurns", () => {
  it.each([
    [1, "At most 1 question at once per user (ASK_MAX_CONCURRENT); wait for one to be answered"],
    [3, "At most 3 questions at once per user (ASK_MAX_CONCURRENT); wait for one to be answered"],
  ])("refuses a question past %i at once, saying so, and takes one again once a turn is given back", (max, said) => {
    const turns = new AskTurns(max);
    const taken = Array.from({ length: max }, () => turns.take(7));
    expect(() => turns.take(7)).toThrow(RateLimitedError);
    expect(() => turns.take(7)).toThrow(said);
    // Another user's turns are their own.
    turns.take(8)();
    taken[0]!();
    expect(() => turns.take(7)).not.toThrow();
  });
});
