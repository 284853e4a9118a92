// What one claim of due tables costs the metadata store as the backlog grows: DUE tables due at
// once across 100 users (a deployment after an outage), a claim of 4 by a new instance each
// time, median of 7. Users take turns in a claim (a window over every due table), where the claim
// once read the oldest due by index alone.
// Run: npx tsx bench/monitoring-claims.ts

import { openStore } from "../src/store/client.js";
import { claimDueTables } from "../src/store/monitoring-tables.js";
import { createPgDatabase } from "../tests/support/services.js";
import { machine, median } from "./lib.js";

const BACKLOGS = [1_000, 20_000];
const database = await createPgDatabase("pulse_bench_claims");
const store = await openStore({ databaseUrl: database.url });
try {
  await store.migrate();
  await database.query("INSERT INTO users (name, email, password_hash) SELECT 'u', 'u' || i || '@example.com', 'h' FROM generate_series(1, 100) i");
  await database.query("INSERT INTO db_connections (owner_id, name, db_type, database_name, password_sealed) SELECT id, 'c', 'sqlite', 'x', 's' FROM users");
  console.log(`machine: ${machine()}`);
  console.log("| tables due | claim of 4, median ms |");
  console.log("|---:|---:|");
  for (const due of BACKLOGS) {
    await database.query("DELETE FROM monitored_tables");
    await database.query(`INSERT INTO monitored_tables (owner_id, connection_id, table_name, interval_seconds, checks, next_run_at)
      SELECT c.owner_id, c.id, 't', 60, '[]', now() - i * interval '1 second' FROM generate_series(1, ${due}) i JOIN db_connections c ON c.id = (SELECT min(id) FROM db_connections) + i % 100`);
    await database.query("ANALYZE monitored_tables");
    const times: number[] = [];
    for (let k = 0; k < 7; k++) {
      const started = performance.now();
      const claimed = await claimDueTables(store.db, { owner: `instance-${k}`, now: new Date(), leaseUntil: new Date(Date.now() + 60_000), limit: 4 });
      times.push(performance.now() - started);
      if (claimed.length !== 4) throw new Error(`claimed ${claimed.length}, expected 4`);
    }
    console.log(`| ${due.toLocaleString("en")} | ${median(times).toFixed(1)} |`);
  }
} finally {
  await store.close();
  await database.drop();
}
