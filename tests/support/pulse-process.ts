// Pulse as a real process (dist/src/main.js, so `npm run build` first): for what only a process
// shows, like how it starts, fails to start, or ends abruptly.

import { spawn, type ChildProcess } from "node:child_process";

import { projectPath } from "../../src/paths.js";

export interface PulseProcess {
  child: ChildProcess;
  /** Everything written so far to stdout (JSON logs) and stderr. */
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs one of Pulse's entry points (`src/main.js` by default) from dist/ with only `env`
 * (plus PATH) as its environment. */
export function spawnPulse(env: Record<string, string>, script = "src/main.js", args: string[] = []): PulseProcess {
  const child = spawn(process.execPath, [projectPath("dist", script), ...args], {
    cwd: projectPath(),
    env: { PATH: process.env.PATH ?? "", NODE_ENV: "test", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

export interface RunningPulse extends PulseProcess {
  base: string;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

/** Starts a server on a free port and resolves once it listens. */
export async function startPulse(env: Record<string, string>, timeoutMs = 90_000): Promise<RunningPulse> {
  const p = spawnPulse({ PORT: "0", HOST: "127.0.0.1", MONITOR_SCHEDULER: "off", ...env });
  const deadline = Date.now() + timeoutMs;
  let port: number | undefined;
  while (port === undefined) {
    const line = p.stdout().split("\n").find((l) => l.includes('"pulse listening"'));
    if (line) port = (JSON.parse(line) as { port: number }).port;
    else if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`pulse exited before listening (${p.child.exitCode ?? p.child.signalCode}): ${p.stderr()}`);
    } else if (Date.now() > deadline) {
      p.child.kill("SIGKILL");
      throw new Error(`pulse did not listen within ${timeoutMs} ms: ${p.stderr()}`);
    } else await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ...p,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
      p.child.kill("SIGTERM");
      await p.exited;
      clearTimeout(timer);
    },
  };
}
