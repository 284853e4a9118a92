import { availableParallelism } from "node:os";

import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    globalSetup: ["tests/support/store-template.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Files share their worker's modules: importing the app anew for each of 150 files added
    // up to 240 s of the workers' time (21 s shared), and on two cores the run is CPU-bound:
    // 728 s for the run against 584-628 s (same machine, same hour). So a file that patches a
    // global or adds a process listener must put it back when done, as they all do.
    isolate: false,
    // Suites mostly wait: on the real servers, and on the timeouts and fault windows they prove.
    // vitest's default (one file per core, less one) ran the files one at a time on two cores,
    // the machine half idle: 11 min 58 s of wall time against 6 min 42 s with three at once
    // (same machine, same hour). Capped because every file opens its own pools to the one
    // PostgreSQL and MariaDB the machine has.
    maxWorkers: Math.min(availableParallelism() + 1, 4),
    // Suites talk to real servers; a failing first test should not hide the rest.
    bail: 0,
  },
});
