// Questions still running when the instance stops (deps.shuttingDown aborted, as serve.ts
// does 2 s before the drain ends): a streamed /ask ends with the 503 shutting_down error event
// rather than being cut by the drain, and an MCP call answers 503 with its own JSON-RPC id.
// One harness per test: once stopped, it answers nothing else.

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { DomainError } from "../../src/errors.js";
import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeStep } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";

const replies: FakeStep[] = [];
let fake: FakeOpenAI;
let h: Harness;

beforeEach(async () => {
  replies.length = 0;
  fake = await startQueuedFakeOpenAI(replies);
  h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", OPENAI_TIMEOUT_MS: "30000" } });
});
afterEach(async () => {
  await h?.close();
  await fake?.close();
});

/** The model's next reply, held until the test has stopped the instance. */
const heldModel = () => {
  let answered!: () => void;
  replies.push(() => new Promise((resolve) => (answered = () => resolve({ content: "too late" }))));
  return () => answered?.();
};

const stop = () => h.deps.shuttingDown.abort(new DomainError("shutting_down", "This Pulse instance is shutting down and stopped the request: send it again"));

/** Resolves once the model has been asked `count` times. */
const asked = async (count: number) => {
  while (fake.requests.length < count) await new Promise((resolve) => setTimeout(resolve, 20));
};

describe("stopping the instance", () => {
  it("ends a streamed /ask already under way with the shutting_down error event", async () => {
    const user = await h.newConnectedUser();
    replies.push({ toolCalls: [{ name: "run_query", args: { sql: "SELECT COUNT(*) AS albums FROM Album" } }] });
    const release = heldModel();
    const streamed = h.call("POST", "/ask", { token: user.token, json: { question: "How many albums?", session_id: user.sessionId }, headers: { accept: "text/event-stream" } });
    await asked(2); // its first events are out; the second model call waits
    stop();
    const res = await streamed;
    release();
    expect(res.status).toBe(200);
    const events = [...res.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(events.slice(-2)).toEqual(["error", "done"]);
    const error = JSON.parse(/event: error\ndata: (.*)/.exec(res.text)![1]!);
    expect(error).toMatchObject({ status: 503, code: "shutting_down" });
  }, 30_000);

  it("answers an MCP call under way 503 shutting_down, with the call's id", async () => {
    const user = await h.newConnectedUser();
    const connectionId = (await h.call("GET", "/databases", { token: user.token })).body[0].id as number;
    const release = heldModel();
    const call = h.call("POST", "/mcp", {
      token: user.token,
      headers: { accept: "application/json, text/event-stream" },
      json: { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "ask", arguments: { connection_id: connectionId, question: "Anything?" } } },
    });
    await asked(1);
    stop();
    const res = await call;
    release();
    expect(res.status, res.text).toBe(503);
    expect(res.headers.get("connection")).toBe("close");
    expect(res.body).toMatchObject({ jsonrpc: "2.0", id: 7, code: "shutting_down", error: { code: -32000 } });
  }, 30_000);
});

describe("requests in flight", () => {
  it("listen for the instance stopping without a listener-leak warning, however many there are", async () => {
    // Node warns past 10 listeners on one signal: every request under way listens to
    // deps.shuttingDown, so a busy instance printed MaxListenersExceededWarning, which reads as
    // a leak to an operator.
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on("warning", onWarning);
    try {
      const users = await Promise.all([1, 2, 3].map(() => h.newConnectedUser()));
      const releases = Array.from({ length: 12 }, heldModel);
      const asks = users.flatMap((user) =>
        [1, 2, 3, 4].map(() => h.call("POST", "/ask", { token: user.token, json: { question: "Anything?", session_id: user.sessionId } })),
      );
      await asked(12);
      stop();
      const answers = await Promise.all(asks);
      for (const release of releases) release();
      expect(answers.map((res) => res.status)).toEqual(Array(12).fill(503));
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.filter((warning) => warning.startsWith("MaxListenersExceededWarning"))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  }, 30_000);
});
