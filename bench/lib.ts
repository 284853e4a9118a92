// Shared bench helpers: start the compiled service as a child process, wait for health,
// percentiles, and a line describing the machine (figures are only comparable on one).

import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("..", import.meta.url));

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? "unknown CPU"} x${cpu.length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform}`;
}

/** Folders a bench made (its servers' DATA_DIRs, SQLite roots): removed as it exits, so that
 * bench runs do not pile up stores in the system's temporary folder. */
const madeDirs: string[] = [];
process.on("exit", () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** A production deployment on this machine's PostgreSQL (metadata in `metaDb`) and Redis, whose
 * budgets let `poolSize` statements run at once without a per-minute limit: the benches
 * measure Pulse, not its refusals. Loopback databases are allowed (production refuses them). */
export function productionEnv(metaDb: string, poolSize: number): Record<string, string> {
  return {
    NODE_ENV: "production",
    DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${metaDb}`,
    REDIS_URL: "redis://127.0.0.1:6379/15",
    JWT_SECRET: randomBytes(32).toString("hex"),
    SECRETS_KEY: randomBytes(32).toString("hex"),
    TARGET_ALLOW_NETWORKS: "127.0.0.0/8",
    CONNECTION_POOL_SIZE: String(poolSize),
    CONNECTION_MAX_CONCURRENCY: String(poolSize),
    CONNECTION_QUERIES_PER_MINUTE: "10000000",
    USER_MAX_CONCURRENCY: String(poolSize),
    USER_QUERIES_PER_MINUTE: "10000000",
    // Every bench run registers its users from 127.0.0.1, and the count outlives the run in Redis.
    REGISTER_MAX_PER_CLIENT: "1000000",
    REGISTER_MAX_TOTAL: "10000000",
  };
}

/** The fields of /proc/<pid>/stat after the command's name (Linux), from the state on. */
const statFields = (pid: number | "self") => readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");

/** User + system CPU of a process so far, in ms (Linux: /proc/<pid>/stat, clock ticks of 10 ms). */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** User + system CPU of this process's waited-for children so far, in ms (cutime + cstime). */
export function childrenCpuMs(): number {
  const fields = statFields("self");
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/** Resident memory of a process, in MB (Linux: /proc/<pid>/status); throws once it has exited. */
export function rssMb(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: number[]) => percentile(values, 50);

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Milliseconds from spawn to the first 200 from /health. */
  readyMs: number;
  rssMb(): number;
  stop(): Promise<void>;
}

let nextPort = 18_000 + Math.floor(Math.random() * 1000);

/**
 * Starts `node dist/src/main.js` (run `npm run build` first) and waits for a healthy /health.
 * BENCH_NODE_ARGS adds node flags to the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 * (Node 20 refuses --cpu-prof in NODE_OPTIONS). `checkout` runs another built checkout's
 * service instead, to compare two versions in one run.
 */
export async function startServer(env: Record<string, string>, checkout = root): Promise<ServerProcess> {
  const port = nextPort++;
  const started = performance.now();
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(checkout, "dist/src/main.js")], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", HOST: "127.0.0.1", PORT: String(port), ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const readyMs = performance.now() - started;
  return {
    child,
    port,
    url,
    readyMs,
    rssMb: () => rssMb(child.pid),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export interface LoadFigures {
  rps: number;
  p50: number;
  p99: number;
  /** The server's own CPU per request, µs: other load on the machine disturbs it far less
   * than it disturbs throughput. */
  cpuUs: number;
  /** CPU per request of every process on the machine but the bench's own (the load generator
   * runs in it): the server plus the databases, Redis and the kernel's work for them. */
  machineCpuUs: number;
}

/** CPU the machine (or the CPUs listed) has spent so far (user, nice, system, irq, softirq;
 * not idle, I/O wait or steal), in ms, less this process's own. */
function othersCpuMs(cpuList?: readonly number[]): number {
  const lines = readFileSync("/proc/stat", "utf8").split("\n");
  const wanted = cpuList ? lines.filter((l) => cpuList.some((n) => l.startsWith(`cpu${n} `))) : [lines[0]!];
  let busy = 0;
  for (const line of wanted) {
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = line.trim().split(/\s+/).slice(1).map(Number);
    busy += (user + nice + system + irq + softirq) * 10;
  }
  const own = process.cpuUsage();
  return busy - (own.user + own.system) / 1000;
}

/** POSTs `body` to `url` at full speed for `duration` seconds over `connections` connections;
 * any non-2xx answer or error fails the bench. `pid` is the server process measured. */
export async function loadPost(
  pid: number | undefined,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  { duration, connections, cpuList }: { duration: number; connections: number; /** CPUs whose work counts as the machine's (default all). */ cpuList?: readonly number[] | undefined },
): Promise<LoadFigures> {
  const cpuBefore = cpuMs(pid);
  const othersBefore = othersCpuMs(cpuList);
  const result = await autocannon({
    url,
    method: "POST",
    duration,
    connections,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  const cpuUs = ((cpuMs(pid) - cpuBefore) * 1000) / result.requests.total;
  const machineCpuUs = ((othersCpuMs(cpuList) - othersBefore) * 1000) / result.requests.total;
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuUs, machineCpuUs };
}
