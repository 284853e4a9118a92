// `pulse check` as a cron job runs it: the wall time and CPU of one invocation from process
// start to exit, against a production-configured store (PostgreSQL, Redis). The table asked for
// does not exist (exit 2), so what is measured is what every run pays before its checks: loading
// the code, reading the settings, connecting to Redis and the store. Baselines in the same run:
// a bare `node` and `pulse help` (the CLI's entry alone); BENCH_BASELINE_CHECKOUT, another built
// checkout (a git worktree of an earlier commit), runs its `pulse check` alternately with ours.
// Run: npm run build && npx tsx bench/check-cli.ts

import { spawnSync } from "node:child_process";
import path from "node:path";

import pg from "pg";

import { childrenCpuMs, machine, median, productionEnv, root, startServer, tempDir } from "./lib.js";

const RUNS = Number(process.env.RUNS ?? 15);
const baselineCheckout = process.env.BENCH_BASELINE_CHECKOUT;

const metaDb = `pulse_bench_check_${process.pid}`;
const admin = new pg.Client({ host: "127.0.0.1", port: 5432, user: "postgres", database: "postgres" });
await admin.connect();
await admin.query(`CREATE DATABASE ${metaDb}`);
const env = { ...productionEnv(metaDb, 4), DATA_DIR: tempDir("pulse-bench-check-"), LOG_LEVEL: "warn" };
// A server migrates the store, as in production; the command refuses one that is not current.
await (await startServer(env)).stop();

interface Sample {
  wallMs: number;
  cpuMs: number;
}

function run(argv: string[], expectedStatus: number): Sample {
  const cpuBefore = childrenCpuMs();
  const started = performance.now();
  const result = spawnSync(process.execPath, argv, { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" });
  const wallMs = performance.now() - started;
  if (result.status !== expectedStatus) throw new Error(`${argv.join(" ")} exited ${result.status}: ${result.stderr}`);
  return { wallMs, cpuMs: childrenCpuMs() - cpuBefore };
}

const pulseAt = (checkout: string) => path.join(checkout, "dist/src/cli/pulse.js");
const commands: { name: string; argv: string[]; status: number }[] = [
  { name: "node -e ''", argv: ["-e", ""], status: 0 },
  { name: "pulse help", argv: [pulseAt(root), "help"], status: 0 },
  { name: "pulse check (unknown table)", argv: [pulseAt(root), "check", "999999"], status: 2 },
  ...(baselineCheckout ? [{ name: `pulse check (unknown table), ${path.basename(baselineCheckout)}`, argv: [pulseAt(baselineCheckout), "check", "999999"], status: 2 }] : []),
];
const samples = new Map(commands.map((c) => [c.name, [] as Sample[]]));
try {
  for (const c of commands) run(c.argv, c.status); // warm the file cache
  for (let i = 0; i < RUNS; i++) for (const c of commands) samples.get(c.name)!.push(run(c.argv, c.status));
} finally {
  await admin.query(`DROP DATABASE ${metaDb} WITH (FORCE)`);
  await admin.end();
}

const ours = samples.get("pulse check (unknown table)")!;
console.log(`machine: ${machine()}`);
console.log(`runs: ${RUNS} of each, interleaved`);
console.log("| command | wall, median | CPU, median | CPU vs our pulse check |");
console.log("|---|---:|---:|---:|");
for (const [name, values] of samples) {
  const wall = median(values.map((s) => s.wallMs));
  const cpu = median(values.map((s) => s.cpuMs));
  console.log(`| ${name} | ${wall.toFixed(0)} ms | ${cpu.toFixed(0)} ms | ${(cpu / median(ours.map((s) => s.cpuMs))).toFixed(2)} |`);
}
