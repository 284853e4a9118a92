// `npm run migrate`: applies pending migrations to the configured store and exits, for
// operators who apply migrations apart from starting the service.

import { loadConfig } from "../config.js";
import { openStore, storeLocation } from "./client.js";

const store = await openStore(storeLocation(loadConfig()));
try {
  await store.migrate();
  console.log(`migrations applied to the ${store.kind} store`);
} finally {
  await store.close();
}
