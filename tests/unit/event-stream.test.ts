// The paced event stream (POST /ask's SSE answer) as hono serves it: an event whose data has no
// JSON form is answered as an error event, and the stream goes on to its end.

import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { describe, expect, it } from "vitest";

import { pacedEvents } from "../../src/http/event-stream.js";

describe("pacedEvents", () => {
  it("sends an event it cannot write as JSON as an error event, and the events after it", async () => {
    const app = new Hono().get("/", (c) =>
      streamSSE(c, async (stream) => {
        const events = pacedEvents(c, stream, { sendTimeoutMs: 5_000, maxBehindChars: 1_000_000 }, () => undefined);
        const cycle: Record<string, unknown> = {};
        cycle.self = cycle;
        void events.send("tool_call", cycle);
        await events.send("done", {});
        events.close();
      }),
    );
    const text = await (await app.request("/")).text();
    expect(text).toBe(
      'event: error\ndata: {"detail":"A tool_call event could not be written as JSON","code":"internal_error","status":500}\n\n' + "event: done\ndata: {}\n\n",
    );
  });
});
