// What the monitoring runtime remembers between runs: a connection's primary-or-replica probe is
// kept for a minute per database it reaches, so a connection moved to another server (from a
// replica to its primary) is probed anew rather than judged by the old server's replay lag.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { loadConfig } from "../../src/config.js";
import type { GuardedConnector } from "../../src/connectors/guarded.js";
import { createMonitoring } from "../../src/monitoring/runtime.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-runtime-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** A connector as targetInfo sees one: its connection, the database it reaches, and its probe. */
const connectorOn = (targetKey: string, replica: boolean) =>
  ({
    connectionId: 1,
    ownerId: 1,
    targetKey,
    probe: async () => ({ server_version: "16", replica, replication_lag_seconds: replica ? 30 : null }),
  }) as unknown as GuardedConnector;

describe("targetInfo", () => {
  it("probes a connection moved to another database anew, and each once a minute", async () => {
    const monitoring = createMonitoring(loadConfig({ DATA_DIR: dataDir }).monitor);
    expect(await monitoring.targetInfo(connectorOn("replica", true))).toMatchObject({ replica: true });
    // The same connection, moved to its primary.
    expect(await monitoring.targetInfo(connectorOn("primary", false))).toMatchObject({ replica: false });
    // Within the minute, its probe of the first database is kept.
    expect(await monitoring.targetInfo(connectorOn("replica", false))).toMatchObject({ replica: true });
  });
});
