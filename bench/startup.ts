// Start-up: cold (new data directory: PGlite initialised, migrations applied, secrets
// generated) and warm (same directory again) to the first healthy /health, plus idle RSS.
// Run: npm run build && npx tsx bench/startup.ts

import { rmSync } from "node:fs";

import { machine, median, startServer, tempDir } from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 5);
const cold: number[] = [];
const warm: number[] = [];
const rss: number[] = [];

for (let i = 0; i < RUNS; i++) {
  const dataDir = tempDir("pulse-bench-start-");
  const first = await startServer({ DATA_DIR: dataDir });
  cold.push(first.readyMs);
  await first.stop();
  const second = await startServer({ DATA_DIR: dataDir });
  warm.push(second.readyMs);
  await new Promise((r) => setTimeout(r, 2000));
  rss.push(second.rssMb());
  await second.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

console.log(`machine: ${machine()}`);
console.log(`runs: ${RUNS}`);
console.log("| embedded defaults | median | min | max |");
console.log("|---|---:|---:|---:|");
for (const [name, values, unit] of [["cold start to healthy /health", cold, "ms"], ["warm start to healthy /health", warm, "ms"], ["idle RSS after warm start", rss, "MiB"]] as const) {
  console.log(`| ${name} | ${median(values).toFixed(0)} ${unit} | ${Math.min(...values).toFixed(0)} | ${Math.max(...values).toFixed(0)} |`);
}
