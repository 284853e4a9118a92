// A real Pulse process (`node dist/src/main.js`, so `npm run build` first) for tests of what
// only a whole process shows: signals, exit codes, start-up failures, abrupt ends.

import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../dist/src/main.js", import.meta.url));

export interface PulseProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** JSON request with an optional bearer token. */
  call(method: string, route: string, init?: { token?: string; json?: unknown; headers?: Record<string, string> }): Promise<Response>;
}

/** A port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Spawns Pulse with `env` (on top of PATH, HOST and a free PORT); `waitHealthy` waits for
 * a 200 from /health (up to 30 s), else returns as soon as it is spawned. */
export async function spawnPulse(env: Record<string, string>, options: { waitHealthy?: boolean } = {}): Promise<PulseProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    cwd: path.dirname(MAIN),
    env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  const call: PulseProcess["call"] = (method, route, init = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    if (init.json !== undefined) headers["content-type"] = "application/json";
    return fetch(`${url}${route}`, { method, headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) });
  };
  const pulse = { child, url, output: () => output, exited, call };
  if (options.waitHealthy !== false) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pulse exited before it was healthy:\n${output}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`pulse was not healthy within 30 s:\n${output}`);
      }
      const res = await fetch(`${url}/health`).catch(() => null);
      if (res?.status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return pulse;
}

/** Registers a unique user on a running Pulse and logs in; returns the bearer token. */
export async function userToken(pulse: PulseProcess, email: string, password = "correct horse battery"): Promise<string> {
  const reg = await pulse.call("POST", "/users/", { json: { name: "Fault Test", email, password } });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
  const login = await pulse.call("POST", "/login", { json: { username: email, password } });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${await login.text()}`);
  return ((await login.json()) as { access_token: string }).access_token;
}
