// POST /ask answered as an event stream to a client that stops reading it. The agent does not
// wait for its client, so without a bound every event stayed in Pulse's memory, and the
// question held its turn (ASK_MAX_CONCURRENT), for as long as the client kept the socket open.
// The client is let go after HTTP_SEND_TIMEOUT_MS without taking anything; one that keeps
// reading, however slowly, gets the whole stream. Real server, raw sockets, the fake model.

import net from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { startQueuedFakeOpenAI, type FakeOpenAI, type FakeReply } from "../support/fake-openai.js";
import { createHarness, type Harness } from "../support/harness.js";

const replies: FakeReply[] = [];
let fake: FakeOpenAI;
let h: Harness;
let port: number;

beforeAll(async () => {
  fake = await startQueuedFakeOpenAI(replies);
  h = await createHarness({
    env: {
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: "fake-model",
      OPENAI_TIMEOUT_MS: "10000",
      ASK_TIMEOUT_MS: "60000",
      ASK_MAX_CONCURRENT: "1",
      HTTP_SEND_TIMEOUT_MS: "1000",
    },
  });
  ({ port } = await h.serve());
});
afterAll(async () => {
  await h?.close();
  await fake?.close();
});
beforeEach(() => {
  replies.length = 0;
});

/** `calls` results of about 8 MB each, then the answer: far more than a loopback socket buffers. */
function largeResults(calls: number) {
  const sql = "SELECT printf('%.*c', 1000000, 'x') AS v FROM Track LIMIT 8";
  replies.push({ toolCalls: Array.from({ length: calls }, () => ({ name: "run_query", args: { sql } })) }, { content: "Long strings." });
}

/** POST /ask for an event stream on a raw socket that reads nothing until told to. */
function streamAsk(token: string) {
  const body = JSON.stringify({ question: "Show me long strings" });
  const socket = net.connect(port, "127.0.0.1");
  socket.pause();
  socket.write(
    `POST /ask HTTP/1.1\r\nHost: pulse\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  const closed = new Promise<void>((resolve) => {
    socket.on("close", () => resolve());
    socket.on("error", () => resolve());
  });
  return { socket, closed };
}

const within = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms))]);

describe("an event stream its client stops reading", () => {
  it("lets the client go after HTTP_SEND_TIMEOUT_MS without progress, giving the question's turn back", async () => {
    const user = await h.newConnectedUser();
    largeResults(5);
    const asked = fake.requests.length;
    const { socket, closed } = streamAsk(user.token);
    try {
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      expect(h.logs.some((line) => line.includes("stopped reading the event stream"))).toBe(true);
      // The agent waited for the client rather than run ahead of it (QUERY_MAX_BYTES, 16 MiB, may
      // wait for the client): stopped with it, it never asked the model again.
      expect(fake.requests.length - asked).toBe(1);
      // The turn (ASK_MAX_CONCURRENT=1) is free again.
      replies.push({ content: "Hello." });
      const next = await h.call("POST", "/ask", { token: user.token, json: { question: "Hi" } });
      expect(next.status).toBe(200);
      // What the client reads at last is cut short: the rest was dropped with it.
      let received = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (received += chunk));
      socket.resume();
      await within(closed, 10_000, "the dropped socket ends");
      expect(received.length).toBeLessThan(24_000_000);
      expect(received).not.toContain("event: done");
    } finally {
      socket.destroy();
    }
  });

  it("sends the whole stream to a client that keeps reading, however slowly", async () => {
    const user = await h.newConnectedUser();
    largeResults(3);
    const { socket, closed } = streamAsk(user.token);
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      // Slowly: each read waits a little before the next.
      socket.pause();
      setTimeout(() => socket.resume(), 5);
    });
    socket.resume();
    await within(closed, 45_000, "the stream ends");
    expect(received).toContain("event: result");
    expect(received).toContain("Long strings.");
    expect(received.lastIndexOf("event: done")).toBeGreaterThan(received.lastIndexOf("event: result"));
    expect(received.split("event: rows").length - 1).toBe(3);
  });
});
