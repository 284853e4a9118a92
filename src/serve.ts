// Serves HTTP on built dependencies (lifecycle.ts), and shuts everything down in order: stop
// accepting, finish in-flight requests, then close what they used. Apart from lifecycle.ts so
// the commands that build dependencies without serving (`pulse check`) do not load the app.

import type { ServerType } from "@hono/node-server";
import type { IncomingMessage, Server, ServerResponse } from "node:http";

import { createApp, JSON_RPC_PATHS } from "./app.js";
import type { Deps } from "./deps.js";
import { DomainError } from "./errors.js";
import { serveApp, serveLimits } from "./http/unread-responses.js";
import { closeDeps, unwritten } from "./lifecycle.js";
import { deliveriesSettled } from "./monitoring/notifiers.js";
import { CANCEL_GRACE_MS, createScheduler, type Scheduler } from "./monitoring/scheduler.js";
import { reasonOf, StartupError } from "./startup-error.js";
import { settlesWithin } from "./within.js";

export interface RunningService {
  deps: Deps;
  server: ServerType;
  port: number;
  /** Null when MONITOR_SCHEDULER=off. */
  scheduler: Scheduler | null;
  stop(): Promise<void>;
}

/** Shutdown's bounds: in-flight requests and running checks get DRAIN_TIMEOUT_MS to finish,
 * then closing the pools and stores gets CLOSE_TIMEOUT_MS. Past either, shutdown goes on without
 * waiting (a stuck statement or an unreachable Redis must not keep a process alive). */
export const DRAIN_TIMEOUT_MS = 10_000;
export const CLOSE_TIMEOUT_MS = 2_000;

export async function startService(
  deps: Deps,
  options: { drainTimeoutMs?: number; closeTimeoutMs?: number } = {},
): Promise<RunningService> {
  const app = createApp(deps);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serveApp(app.fetch, { port: deps.config.port, hostname: deps.config.host, ...serveLimits(deps, JSON_RPC_PATHS) }, () => {
      s.off("error", refused);
      resolve(s);
    });
    // Before listening, an 'error' is the address refused (in use, not this machine's, a
    // privileged port): one line naming the settings, as for any other that points wrong.
    const refused = (err: NodeJS.ErrnoException) => reject(listenError(err, deps.config.host, deps.config.port));
    s.once("error", refused);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : deps.config.port;
  deps.logger.info({ port, store: deps.store.kind, sessions: deps.sessions.kind }, "pulse listening");
  const scheduler = deps.config.monitor.scheduler ? createScheduler(deps) : null;
  scheduler?.start();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      deps.logger.info("shutting down: draining HTTP and running checks");
      // What is in flight finishes first, within the drain's bound: requests, and the checks
      // running now (no more are claimed), which would otherwise take the close's bound and
      // leave the pools, the audit trail's last write and the stores unclosed.
      const drainTimeoutMs = options.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
      const drainUntil = Date.now() + drainTimeoutMs;
      // Checks still running a moment before the drain's end are stopped, in time for their
      // statements' records to be written and their tables released.
      const checksWithinMs = Math.max(0, Math.min(deps.config.monitor.stopTimeoutMs, drainTimeoutMs - CANCEL_GRACE_MS));
      // Requests still running then are stopped too, in time to answer 503 shutting_down (and
      // cancel their statements) before the drain cuts their connections.
      const stopRequests = setTimeout(
        () => deps.shuttingDown.abort(new DomainError("shutting_down", "This Pulse instance is shutting down and stopped the request: send it again")),
        Math.max(0, drainTimeoutMs - CANCEL_GRACE_MS),
      );
      await Promise.all([drain(server as Server, drainTimeoutMs), scheduler && settlesWithin(scheduler.stop(checksWithinMs), drainTimeoutMs)]);
      clearTimeout(stopRequests);
      // Then the notifications those requests and runs started (they answered without waiting
      // for them), in what is left of the drain's bound: one cut short is sent again after its
      // claim runs out, with the same X-Pulse-Notification.
      await settlesWithin(deliveriesSettled(deps), Math.max(0, drainUntil - Date.now()));
      const closeTimeoutMs = options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
      const closed = await settlesWithin(closeDeps(deps), closeTimeoutMs);
      if (closed) deps.logger.info("shut down");
      else deps.logger.warn({ close_timeout_ms: closeTimeoutMs, ...unwritten(deps) }, "shut down without waiting for everything to close");
    })());
  return { deps, server, port, scheduler, stop };
}


/** Why an address could not be listened on, and which setting to change. */
const LISTEN_REASONS: Record<string, { setting: "PORT" | "HOST"; reason: string }> = {
  EADDRINUSE: { setting: "PORT", reason: "address already in use (another process listens there: stop it, or set PORT to a free port)" },
  EACCES: { setting: "PORT", reason: "permission denied (a port below 1024 needs privileges: set PORT to 1024 or above)" },
  EADDRNOTAVAIL: { setting: "HOST", reason: "address not available on this machine (set HOST to one of its addresses, or 0.0.0.0)" },
};

/** Anything else (a HOST that does not resolve, an address family the machine lacks) is HOST's. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const known = err.code ? LISTEN_REASONS[err.code] : undefined;
  return new StartupError(`${known?.setting ?? "HOST"}: cannot listen on ${host}:${port}: ${known?.reason ?? reasonOf(err)}`);
}

/** How often a draining server closes the kept-alive sockets whose request has finished. */
const CLOSE_IDLE_EVERY_MS = 100;

/** Stops accepting connections and resolves when in-flight requests have finished (or the
 * timeout passed, after which remaining connections are cut). */
function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    // A kept-alive socket would carry new requests into a draining server (a pooling proxy
    // sends them as long as it may) and, idle, hold close() open for its keep-alive timeout:
    // what arrives on one now is answered with Connection: close, and each is closed as soon
    // as its request is done.
    server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
    });
    const closingIdle = setInterval(() => server.closeIdleConnections(), CLOSE_IDLE_EVERY_MS);
    const done = () => {
      clearInterval(closingIdle);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      server.closeAllConnections();
      done();
    }, timeoutMs);
    server.close(done);
    server.closeIdleConnections();
  });
}
