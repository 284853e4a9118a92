import { describe, expect, it } from "vitest";

import { counted } from "../../src/counted.js";

describe("counted", () => {
  it.each([
    [0, "check", "0 checks"],
    [1, "check", "1 check"],
    [2, "migration", "2 migrations"],
    [1, "row", "1 row"],
  ] as const)("%i %s is %s", (n, noun, said) => {
    expect(counted(n, noun)).toBe(said);
  });
});
