// Token counts for model servers that report no usage (agents/token-count-worker.ts, run here
// in this thread): time and the ratio to the exact o200k count, on texts a prompt or a reply is
// made of, and on texts that made BPE slow on the event loop before (the exact count is skipped
// where it would take seconds).
// Run: npx tsx bench/token-count.ts

import { Tiktoken } from "js-tiktoken/lite";
import o200kBase from "js-tiktoken/ranks/o200k_base";

import countInWorker from "../agents/token-count-worker.js";
import { machine } from "./lib.js";

const exact = new Tiktoken(o200kBase);
const english = "The quick brown fox jumps over the lazy dog, and the customers who bought the most rock tracks in 2021 were from Brazil. ".repeat(40);
const rows = JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => [i, `name ${i}`, i * 1.5]) });
const chinese = "我们的客户在二零二一年购买了最多的摇滚音乐曲目，他们来自巴西。".repeat(100);
const code = "function f(x) {\n    return x + 1;\n}\n\n".repeat(100);
const texts: [string, string, boolean][] = [
  ["English prose", english, true],
  ["rows as JSON", rows, true],
  ["code", code, true],
  ["French prose", "Les élèves ont étudié à l'école française pendant l'été. ".repeat(50), true],
  ["Chinese prose", chinese, true],
  ["English, then Chinese", english + chinese, true],
  ["Chinese, then English", chinese + english, true],
  ["base64, 64,000 characters", Buffer.alloc(48_000, 7).toString("base64"), true],
  ['8,000 "x" (11.5 s on the event loop before)', "x".repeat(8_000), false],
  ['2,000 "中" (3.9 s before)', "中".repeat(2_000), false],
  ['1,000,000 "x"', "x".repeat(1_000_000), false],
];
countInWorker(["warm up"]);
console.log(`${machine()}; one run each`);
console.log("");
console.log("| text | characters | counted | exact o200k | ratio | time, ms |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const [name, text, withExact] of texts) {
  const started = performance.now();
  const [counted] = countInWorker([text]);
  const ms = performance.now() - started;
  const truth = withExact ? exact.encode(text).length : null;
  console.log(`| ${name} | ${text.length} | ${counted} | ${truth ?? "-"} | ${truth ? (counted! / truth).toFixed(3) : "-"} | ${ms.toFixed(1)} |`);
}
