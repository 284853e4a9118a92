// Token counts for model servers that report no usage (agents/token-count-worker.ts), against
// the exact o200k count: a long text is counted on pieces spread over all of it, so a prompt of
// English, then Chinese (or the other way round) is counted as a whole, not as its start.

import { Tiktoken } from "js-tiktoken/lite";
import o200kBase from "js-tiktoken/ranks/o200k_base";
import { describe, expect, it } from "vitest";

import countInWorker from "../../agents/token-count-worker.js";

const exact = new Tiktoken(o200kBase);
const english = "The quick brown fox jumps over the lazy dog, and the customers who bought the most rock tracks in 2021 were from Brazil. ".repeat(40);
const chinese = "我们的客户在二零二一年购买了最多的摇滚音乐曲目，他们来自巴西。".repeat(100);
const rows = JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => [i, `name ${i}`, i * 1.5]) });

describe("countInWorker", () => {
  it.each([
    { name: "English", text: english },
    { name: "English, then Chinese", text: english + chinese },
    { name: "Chinese, then English", text: chinese + english },
    { name: "rows as JSON", text: rows },
    { name: "a short question", text: "How many customers are there in Brazil?" },
  ])("counts $name within a tenth of o200k", ({ text }) => {
    const [counted] = countInWorker([text]);
    expect(counted! / exact.encode(text).length).toBeGreaterThan(0.9);
    expect(counted! / exact.encode(text).length).toBeLessThan(1.1);
  });

  it("counts texts without spaces, which BPE takes as one word, to about what o200k makes of them", () => {
    // Too slow to count exactly here (the reason for the pieces): o200k makes one token of
    // eight "x", and one of each "中".
    const [xs, han] = countInWorker(["x".repeat(8_000), "中".repeat(2_000)]);
    expect(xs).toBe(1_000);
    expect(han).toBe(2_000);
  });
});
