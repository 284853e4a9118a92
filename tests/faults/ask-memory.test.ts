// A long-running Pulse answers questions without keeping anything of each. LangGraph adds an
// abort listener to the signal it is given and never removes it, and Node keeps a signal made
// by AbortSignal.any() for as long as it has listeners and has not aborted: /ask's signal (the
// client's and the ASK_TIMEOUT_MS deadline together) never aborted on a question answered in
// time, so every question left it, LangGraph's controller and their listeners (about 3 KB)
// on the heap for the life of the process.

import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { startFakeOpenAI, type FakeOpenAI } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const QUESTIONS = 200;

let fake: FakeOpenAI;
let h: Harness;

// Every signal AbortSignal.any() makes in this process (Pulse runs in it), held weakly: what is
// still reachable after a collection is what something keeps. Counting them, rather than the
// heap's bytes, leaves out the code the engine compiles meanwhile.
const madeByAny: WeakRef<AbortSignal>[] = [];
const any = AbortSignal.any.bind(AbortSignal);

beforeAll(async () => {
  AbortSignal.any = (signals) => {
    const signal = any(signals);
    madeByAny.push(new WeakRef(signal));
    return signal;
  };
  fake = await startFakeOpenAI(Array.from({ length: 2 * QUESTIONS }, () => ({ content: "There are 347 albums." })));
  h = await createHarness({ env: { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: "fake-model", ASK_PER_MINUTE: "100000" } });
});
afterAll(async () => {
  AbortSignal.any = any;
  await h?.close();
  await fake?.close();
});

describe("POST /ask, question after question", () => {
  it("keeps nothing of a question once it is answered", { timeout: 60_000 }, async () => {
    const user = await h.newConnectedUser();
    let threadId: string | undefined;
    for (let i = 0; i < QUESTIONS; i++) {
      const res = await h.call("POST", "/ask", { token: user.token, json: { question: "How many albums?", session_id: user.sessionId, thread_id: threadId } });
      expect(res.status, res.text).toBe(200);
      threadId = res.body.thread_id as string;
    }
    expect(madeByAny.length).toBeGreaterThanOrEqual(QUESTIONS);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const kept = madeByAny.filter((ref) => ref.deref() !== undefined).length;
    // Before the fix every question kept its own: 200 of 200.
    expect(kept).toBeLessThan(QUESTIONS / 20);
  });
});
