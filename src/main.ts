// Process entry: config, dependencies, HTTP server, and graceful shutdown on SIGINT/SIGTERM.

import { ConfigError, loadConfig } from "./config.js";
import { buildDeps, startService } from "./service.js";

try {
  const config = loadConfig();
  const service = await startService(await buildDeps(config));
  const shutdown = (signal: string) => {
    service.deps.logger.info({ signal }, "signal received");
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        service.deps.logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
