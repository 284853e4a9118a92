import { describe, expect, it } from "vitest";

import { OneAtATime } from "../../src/one-at-a-time.js";

describe("OneAtATime", () => {
  it("answers calls during a run with the one run after it, started once the first has ended", async () => {
    const one = new OneAtATime<number>();
    let runs = 0;
    let running = 0;
    let most = 0;
    const start = async () => {
      const n = ++runs;
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return n;
    };
    const answers = await Promise.all([one.run(start), one.run(start), one.run(start), one.run(start)]);
    expect(answers).toEqual([1, 2, 2, 2]);
    expect(most).toBe(1);
    // Idle again: the next call starts a run of its own.
    expect(await one.run(start)).toBe(3);
  });

  it("runs the one after a failed run too, and passes each run's failure to its callers", async () => {
    const one = new OneAtATime<string>();
    const failing = one.run(() => Promise.reject(new Error("first failed")));
    const after = one.run(async () => "second");
    await expect(failing).rejects.toThrow("first failed");
    await expect(after).resolves.toBe("second");
  });

  it("settles once the run under way and the one asked for after it have ended, failed or not", async () => {
    const one = new OneAtATime<string>();
    await one.settled(); // idle: at once
    const ended: string[] = [];
    const later = (name: string, fail = false) => async () => {
      await new Promise((r) => setTimeout(r, 20));
      ended.push(name);
      if (fail) throw new Error(name);
      return name;
    };
    const first = one.run(later("first", true));
    const second = one.run(later("second"));
    await one.settled();
    expect(ended).toEqual(["first", "second"]);
    await expect(first).rejects.toThrow("first");
    await expect(second).resolves.toBe("second");
  });
});
