// Process entry: config, dependencies, HTTP server, and graceful shutdown on SIGINT/SIGTERM.

import { inspect } from "node:util";

import { ConfigError, loadConfig } from "./config.js";
import { buildDeps, unwritten } from "./lifecycle.js";
import { CLOSE_TIMEOUT_MS, DRAIN_TIMEOUT_MS, startService } from "./serve.js";
import { createLogger, routeConsoleTo } from "./logger.js";
import { StartupError } from "./startup-error.js";

/** Past both shutdown phases, the process exits whatever is still running. */
const EXIT_DEADLINE_MS = DRAIN_TIMEOUT_MS + CLOSE_TIMEOUT_MS + 1_000;

try {
  const config = loadConfig();
  // Before anything connects: a driver warns as it connects (ioredis of a password Redis does
  // not ask for), and its lines belong in the log as JSON like everyone's.
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  routeConsoleTo(logger);
  const deps = await buildDeps(config, logger);
  // A promise rejected with no one to catch it is a bug to log and fix, not a reason to end
  // every request in flight (Node's default): the tests fail on one.
  process.on("unhandledRejection", (err: unknown) => deps.logger.error({ err }, "unhandled promise rejection"));
  const service = await startService(deps);
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) {
      // A second signal: the operator does not want to wait.
      service.deps.logger.warn({ signal, ...unwritten(service.deps) }, "second signal: exiting now");
      process.exit(1);
    }
    signalled = true;
    service.deps.logger.info({ signal }, "signal received");
    setTimeout(() => {
      service.deps.logger.error({ deadline_ms: EXIT_DEADLINE_MS, ...unwritten(service.deps) }, "shutdown deadline passed: exiting");
      process.exit(1);
    }, EXIT_DEADLINE_MS).unref();
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        service.deps.logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
} catch (err) {
  // A wrong setting is one line naming it; anything else keeps its stack. Written to stderr
  // itself: by the time the server listens, console goes to the log.
  process.stderr.write(`${err instanceof ConfigError || err instanceof StartupError ? err.message : inspect(err)}\n`);
  process.exit(1);
}
