// The README's walk-through, run as a reader would paste it: its ```bash blocks, unchanged but
// for `localhost:8000` (replaced with the started server's address), in one bash with
// `set -euo pipefail`, against a real Pulse process on embedded defaults in a temporary
// DATA_DIR, with the scripted model server behind /ask. A `curl` function in front of the real
// one keeps each call's arguments, headers and body, so every step's status and shape is checked.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { projectPath } from "../../src/paths.js";
import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { startPulse, type RunningPulse } from "../support/pulse-process.js";

const TOP_ARTISTS_SQL =
  "SELECT ar.Name, COUNT(*) AS albums FROM Album al JOIN Artist ar ON ar.ArtistId = al.ArtistId GROUP BY ar.ArtistId ORDER BY albums DESC LIMIT 3";
const ANSWER = "Iron Maiden (21), Led Zeppelin (14) and Deep Purple (11).";

/** The ```bash blocks of the README's Walk-through section, in order. */
function walkthroughBlocks(readme: string): string[] {
  const section = /^## Walk-through\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? "";
  return [...section.matchAll(/^```bash\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Records every curl call (a file counter, since calls in $(...) run in subshells). */
const RECORDING_CURL = `
curl() {
  local n=$(( $(cat "$WALK_LOG/count") + 1 ))
  echo "$n" > "$WALK_LOG/count"
  printf '%s\\0' "$@" > "$WALK_LOG/$n.args"
  command curl -D "$WALK_LOG/$n.head" "$@" | tee "$WALK_LOG/$n.body"
}
`;

interface Step {
  method: string;
  path: string;
  status: number;
  body: any;
}

function recordedSteps(log: string): Step[] {
  const count = Number(readFileSync(path.join(log, "count"), "utf8"));
  return Array.from({ length: count }, (_, i) => {
    const args = readFileSync(path.join(log, `${i + 1}.args`), "utf8").split("\0").slice(0, -1);
    const method = args.includes("-X") ? args[args.indexOf("-X") + 1]! : "GET";
    const url = new URL(`http://${args.find((a) => a.startsWith("127.0.0.1:"))}`);
    const status = Number(/^HTTP\/\S+ (\d+)/.exec(readFileSync(path.join(log, `${i + 1}.head`), "utf8"))?.[1]);
    const text = readFileSync(path.join(log, `${i + 1}.body`), "utf8");
    return { method, path: url.pathname, status, body: text ? JSON.parse(text) : null };
  });
}

/** Async, not spawnSync: the fake model server answers /ask from this very event loop. */
function runBash(script: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  // stdin closed: a socket there would make bash read ~/.bashrc, as for a remote shell.
  const child = spawn("bash", ["-c", script], { cwd: projectPath(), env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

let fake: FakeOpenAI;
let pulse: RunningPulse;
let dir: string;

beforeAll(async () => {
  fake = await startFakeOpenAI([
    { toolCalls: [{ name: "run_query", args: { sql: TOP_ARTISTS_SQL } }] },
    { content: ANSWER },
  ]);
  dir = mkdtempSync(path.join(tmpdir(), "pulse-walkthrough-"));
  // SQLITE_ROOT left to its default, $DATA_DIR/sqlite, which the walk-through must find.
  pulse = await startPulse({
    DATA_DIR: path.join(dir, "data"),
    BCRYPT_ROUNDS: "4",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_MODEL: "fake-model",
  });
}, 120_000);

afterAll(async () => {
  await pulse?.stop();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("README walk-through", () => {
  it("works when pasted, step by step", async () => {
    const readme = readFileSync(projectPath("README.md"), "utf8");
    const blocks = walkthroughBlocks(readme);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const script = blocks.join("\n");
    expect(script).toContain("localhost:8000");
    const log = path.join(dir, "calls");
    mkdirSync(log);
    writeFileSync(path.join(log, "count"), "0");

    const run = await runBash(`set -euo pipefail\n${RECORDING_CURL}\n${script.replaceAll("localhost:8000", pulse.base.replace("http://", ""))}`, {
      PATH: process.env.PATH ?? "",
      WALK_LOG: log,
      DATA_DIR: path.join(dir, "data"),
    });
    expect(run.status, `bash failed:\n${run.stderr}\n${run.stdout}`).toBe(0);
    expect(run.stderr).toBe("");

    const steps = recordedSteps(log);
    const db = steps[2]?.body?.db_connection?.id as number;
    expect(steps.map((s) => `${s.method} ${s.path} ${s.status}`)).toEqual([
      "POST /users/ 201",
      "POST /login 200",
      "POST /databases/add_db_connection 201",
      `POST /databases/${db}/test 200`,
      "GET /databases 200",
      `POST /databases/connect_db/${db} 200`,
      "POST /query 200",
      "POST /query 400",
      "POST /ask 200",
    ]);
    const [register, login, added, tested, listed, connected, query, refused, asked] = steps as [Step, Step, Step, Step, Step, Step, Step, Step, Step];
    expect(register.body).toMatchObject({ id: expect.any(Number), name: "Sarah Wilson", email: "sarah@shop.com" });
    expect(login.body).toMatchObject({ access_token: expect.any(String), token_type: "bearer", session_id: expect.any(String) });
    expect(added.body.db_connection).toMatchObject({ db_type: "sqlite", database_name: "chinook.sqlite", name: "Chinook" });
    expect(tested.body).toMatchObject({ read_only: true });
    expect(listed.body).toEqual([expect.objectContaining({ id: db, name: "Chinook" })]);
    expect(connected.body).toMatchObject({ session_id: login.body.session_id, db_id: db });
    expect(query.body).toMatchObject({ status: "ok", data: { rows: [["AC/DC"], ["Accept"], ["Aerosmith"]] } });
    expect(refused.body).toMatchObject({ code: "sql_refused", rule: expect.any(String) });
    expect(asked.body).toMatchObject({
      answer: ANSWER,
      session_id: login.body.session_id,
      sql: [TOP_ARTISTS_SQL],
      statements: [{ sql: TOP_ARTISTS_SQL, outcome: "ok", row_count: 3 }],
      result: { columns: ["Name", "albums"], rows: [["Iron Maiden", 21], ["Led Zeppelin", 14], ["Deep Purple", 11]] },
    });
    // The sample went to the server's SQLITE_ROOT, not into the repository's data/.
    expect(readdirSync(path.join(dir, "data", "sqlite"))).toContain("chinook.sqlite");
  }, 90_000);
});
