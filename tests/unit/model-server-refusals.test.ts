// What a model server's refusal teaches the adapter (agents/model-server.ts), and for how long:
// the HTTP path of the first refusal is in tests/api/ask-model-servers.test.ts; the clock here
// is the test's, so the lesson's end is shown without waiting ten minutes.

import { describe, expect, it } from "vitest";

import { ModelServerAdapter, PROFILES, REFUSAL_HOLDS_MS } from "../../agents/model-server.js";
import { DomainError } from "../../src/errors.js";

const refusal = (message: string) => new DomainError("model_failed", message, { model_status: 400 });

function adapter(protocol: "auto" | "native" = "auto", profile = PROFILES.ollama) {
  let now = 1_000_000;
  const changes: string[] = [];
  const server = new ModelServerAdapter(profile, protocol, (change) => changes.push(change), () => now);
  return { server, changes, pass: (ms: number) => (now += ms) };
}

describe("a refusal of tools", () => {
  it("switches to the text protocol for REFUSAL_HOLDS_MS, then offers tools again", () => {
    const { server, changes, pass } = adapter();
    const plan = server.plan(true);
    expect(plan.protocol).toBe("native");
    expect(server.learn(refusal("model_failed: registry.ollama.ai/library/gemma does not support tools"), plan)).toBe(true);
    expect(changes).toEqual(["switching to the text protocol (fenced SQL) for 10 minutes: this model server refused tool calls; set MODEL_TOOLS=text to start there"]);
    expect(server.plan(true)).toMatchObject({ protocol: "text", stream: false });
    pass(REFUSAL_HOLDS_MS - 1);
    expect(server.plan(true).protocol).toBe("text");
    // The server may have changed meanwhile (a model with a tool template pulled).
    pass(1);
    expect(server.plan(true)).toMatchObject({ protocol: "native", stream: true });
    // Refused again: learnt again, for as long.
    expect(server.learn(refusal("does not support tools"), server.plan(true))).toBe(true);
    expect(server.plan(true).protocol).toBe("text");
    expect(changes).toHaveLength(2);
  });

  it("stops streaming calls with tools for REFUSAL_HOLDS_MS, then streams them again", () => {
    const { server, changes, pass } = adapter("auto", PROFILES.llamacpp);
    expect(server.learn(refusal("Automatic streaming tool choice is not supported"), server.plan(true))).toBe(true);
    expect(changes).toEqual(["tool calls are not streamed to this model server for 10 minutes"]);
    expect(server.plan(true)).toMatchObject({ protocol: "native", stream: false });
    pass(REFUSAL_HOLDS_MS);
    expect(server.plan(true)).toMatchObject({ protocol: "native", stream: true });
  });

  it("teaches nothing under MODEL_TOOLS=native, nor from a refusal that names no tools", () => {
    const native = adapter("native");
    expect(native.server.learn(refusal("does not support tools"), native.server.plan(false))).toBe(false);
    expect(native.server.plan(false).protocol).toBe("native");
    const auto = adapter();
    expect(auto.server.learn(refusal("context length exceeded"), auto.server.plan(false))).toBe(false);
    expect(auto.server.plan(false).protocol).toBe("native");
  });
});
