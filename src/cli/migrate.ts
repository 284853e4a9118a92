// `pulse migrate`: applies pending migrations to the configured store and exits, for
// operators who apply migrations apart from starting the service.

import { ConfigError, loadStoreConfig } from "../config.js";
import { counted } from "../counted.js";
import { StartupError } from "../startup-error.js";
import { openStore, storeLocation } from "../store/client.js";
import { StoreInUseError } from "../store/data-dir-lock.js";

/** The exit code: 0 once applied, 4 while a server holds the embedded store (as `pulse check`),
 * 1 otherwise (with one line on stderr saying why). */
export async function migrate(): Promise<number> {
  try {
    const store = await openStore(storeLocation(loadStoreConfig()));
    try {
      // Counted under the migration lock: of runs started together, only the one that applied
      // them says so.
      const { applied, total } = await store.migrate();
      console.log(
        applied === 0
          ? `the ${store.kind} store is up to date (${counted(total, "migration")}), nothing to apply`
          : `${counted(applied, "migration")} applied to the ${store.kind} store (${total} in all)`,
      );
    } finally {
      await store.close();
    }
    return 0;
  } catch (err) {
    if (err instanceof StoreInUseError) {
      console.error(
        `pulse migrate: the embedded store ${err.dir} is in use by pid ${err.owner.pid} (${err.owner.command}), and PGlite allows one process; ` +
          `a server applies pending migrations itself when it starts: stop it, then run this again (or just restart it)`,
      );
      return 4;
    } else {
      console.error(err instanceof ConfigError || err instanceof StartupError ? err.message : err);
    }
    return 1;
  }
}
