// vitest's global setup: one metadata store migrated once per run, which each harness's store
// is copied from (CREATE DATABASE ... TEMPLATE) instead of migrating a fresh database: 110-130 ms
// a harness against 13 ms, and a run makes hundreds. Named uniquely and dropped at the end, so
// runs side by side share nothing; each copy is still the harness's own database.

import { openStore } from "../../src/store/client.js";
import { createPgDatabase, untilPulseDisconnected } from "./services.js";

/** The environment variable naming the template for the test workers (which vitest starts
 * after this setup, with its environment). */
export const STORE_TEMPLATE = "PULSE_TEST_STORE_TEMPLATE";

export async function setup(): Promise<() => Promise<void>> {
  const template = await createPgDatabase("pulse_store_template");
  const store = await openStore({ databaseUrl: template.url, queryTimeoutMs: 30_000 });
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  // PostgreSQL copies no database with sessions on it.
  if (!(await untilPulseDisconnected(template.name))) throw new Error(`sessions on ${template.name} did not end`);
  process.env[STORE_TEMPLATE] = template.name;
  return () => template.drop();
}
