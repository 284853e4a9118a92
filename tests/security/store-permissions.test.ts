// The embedded store holds password hashes and sealed credentials: nobody but the service's own
// user may read or write it, whether Pulse creates it or finds it made with open modes.

import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

import { startPulse } from "../support/pulse-process.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** Every path under `dir` whose mode lets group or others in. */
function openToOthers(dir: string): string[] {
  const open: string[] = [];
  const walk = (p: string) => {
    if ((statSync(p).mode & 0o077) !== 0) open.push(`${p} ${(statSync(p).mode & 0o777).toString(8)}`);
    if (statSync(p).isDirectory()) readdirSync(p).forEach((name) => walk(path.join(p, name)));
  };
  walk(dir);
  return open;
}

describe("embedded store permissions", () => {
  it("creates the data directory, the store and its files for the owner only", async () => {
    const parent = mkdtempSync(path.join(tmpdir(), "pulse-perm-"));
    dirs.push(parent);
    const dataDir = path.join(parent, "data");
    const pulse = await startPulse({ DATA_DIR: dataDir });
    await pulse.stop();
    expect(openToOthers(dataDir)).toEqual([]);
  }, 120_000);

  it("closes an existing store directory made with open modes", async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), "pulse-perm-"));
    dirs.push(dataDir);
    mkdirSync(path.join(dataDir, "pglite"));
    chmodSync(path.join(dataDir, "pglite"), 0o777);
    const pulse = await startPulse({ DATA_DIR: dataDir });
    await pulse.stop();
    expect(statSync(path.join(dataDir, "pglite")).mode & 0o777).toBe(0o700);
  }, 120_000);
});
