// Pulse as a real process (dist/src/main.js, so `npm run build` first): for what only a process
// shows, like how it starts, fails to start, or ends abruptly.

import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";

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
  /** A JSON request with an optional bearer token. */
  call(method: string, route: string, init?: { token?: string; json?: unknown; headers?: Record<string, string> }): Promise<Response>;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

/** A port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a server on a free port and resolves once /health answers 200. */
export async function startPulse(env: Record<string, string>, timeoutMs = 90_000): Promise<RunningPulse> {
  const port = await freePort();
  const p = spawnPulse({ HOST: "127.0.0.1", MONITOR_SCHEDULER: "off", ...env, PORT: String(port) });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`pulse exited before it was healthy (${p.child.exitCode ?? p.child.signalCode}): ${p.stderr()}`);
    }
    if (Date.now() > deadline) {
      p.child.kill("SIGKILL");
      throw new Error(`pulse was not healthy within ${timeoutMs} ms: ${p.stderr()}`);
    }
    const res = await fetch(`${base}/health`).catch(() => null);
    if (res?.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ...p,
    base,
    call(method, route, init = {}) {
      const headers: Record<string, string> = { ...init.headers };
      if (init.token) headers.authorization = `Bearer ${init.token}`;
      if (init.json !== undefined) headers["content-type"] = "application/json";
      return fetch(`${base}${route}`, { method, headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) });
    },
    async stop() {
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
      p.child.kill("SIGTERM");
      await p.exited;
      clearTimeout(timer);
    },
  };
}

/** Registers a unique user on a running Pulse and logs in; returns the bearer token. */
export async function userToken(pulse: RunningPulse, email: string, password = "correct horse battery"): Promise<string> {
  const reg = await pulse.call("POST", "/users/", { json: { name: "Fault Test", email, password } });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
  const login = await pulse.call("POST", "/login", { json: { username: email, password } });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${await login.text()}`);
  return ((await login.json()) as { access_token: string }).access_token;
}
