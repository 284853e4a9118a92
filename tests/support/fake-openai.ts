// A scripted OpenAI-compatible chat completions server on 127.0.0.1, so agent tests drive the
// real ChatOpenAI client over real HTTP and can assert exactly what the model was sent.

import { randomUUID } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ChatMessageBody {
  role: string;
  content: string | null | { type: string; text?: string }[];
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessageBody[];
  tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [key: string]: unknown;
}

export interface FakeUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** A tool call; `rawArgs` is sent as the arguments text verbatim (e.g. JSON cut off midway). */
export interface FakeToolCall {
  name: string;
  args?: unknown;
  rawArgs?: string;
  id?: string;
}

/** http500: an error status with an OpenAI error body; busy: 429 asking to wait 30 s; malformed: a body (or SSE event) that is
 * not JSON; hang: reads the request, never answers; stall: streams the first chunk, then never
 * another; not_openai: 200 with JSON that is not a chat completion (another API); html: 200 with
 * a web page; cut: starts the answer, then destroys the socket; ended: starts a stream, then
 * closes it cleanly without a finish_reason or [DONE]; flood: sends 64 KiB pieces of one endless
 * answer until the client hangs up (64 MiB at most); giant_event: one answer of 12 MiB, streamed as a
 * single event (in 64 KiB pieces, no blank line until its end), or as one plain completion. */
export type FakeFailure = "http500" | "busy" | "malformed" | "hang" | "stall" | "not_openai" | "html" | "cut" | "ended" | "flood" | "giant_event";

export type FakeReply =
  /** A final answer; streamed as `chunks` when given, else word by word. `usage: null` sends
   * none; `finishReason` "length" is an answer cut off by max_tokens. */
  | { content: string; chunks?: string[]; usage?: FakeUsage | null; finishReason?: string }
  /** `preamble`: words before the calls, as models say "Let me look that up" first. */
  | { toolCalls: FakeToolCall[]; preamble?: string; usage?: FakeUsage | null; finishReason?: string }
  | { fail: FakeFailure }
  /** Any error status with this body. */
  | { status: number; body: string; contentType?: string };

/** A function may answer later (a promise): a test holds the model's reply while it acts. */
export type FakeStep = FakeReply | ((request: ChatRequest) => FakeReply | Promise<FakeReply>);

/** How the server differs from OpenAI's own API (tests/support/model-servers.ts). */
export interface FakeServerOptions {
  /** Whether a stream ends with usage when stream_options.include_usage asks (default true). */
  streamUsage?: boolean;
  /** Tool call arguments are streamed in two pieces (default), or whole in one chunk. */
  wholeToolCallChunks?: boolean;
}

export interface FakeOpenAI {
  /** Ends with /v1, as OpenAI clients expect. */
  baseUrl: string;
  /** Every request body received, in order (also those answered with a failure). */
  requests: ChatRequest[];
  /** The headers and URL (path and query) of each request, in the same order. */
  requestHeaders: IncomingHttpHeaders[];
  requestUrls: string[];
  /** Requests whose client hung up before they were answered (a hang, a stall, a flood). */
  readonly hungUp: number;
  close(): Promise<void>;
}

export const DEFAULT_USAGE: FakeUsage = { prompt_tokens: 100, completion_tokens: 10 };

export async function startFakeOpenAI(script: FakeStep[], options: FakeServerOptions = {}): Promise<FakeOpenAI> {
  const requests: ChatRequest[] = [];
  const requestHeaders: IncomingHttpHeaders[] = [];
  const requestUrls: string[] = [];
  let next = 0;
  let completions = 0;

  let hungUp = 0;
  const server = createServer((req, res) => {
    res.on("close", () => {
      if (!res.writableEnded) hungUp += 1;
    });
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: String(err), type: "fake_server_error" } }));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (req.method !== "POST" || !new URL(req.url ?? "/", "http://fake").pathname.endsWith("/chat/completions")) {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "not found" } }));
      return;
    }
    const body = JSON.parse(await readBody(req)) as ChatRequest;
    requests.push(body);
    requestHeaders.push(req.headers);
    requestUrls.push(req.url ?? "");
    const step = script[next++];
    if (step === undefined) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `fake script exhausted after ${script.length} steps`, type: "server_error" } }));
      return;
    }
    const reply = typeof step === "function" ? await step(body) : step;
    // A fresh id per completion: LangGraph replaces messages that share an id.
    const id = `chatcmpl-fake-${++completions}-${randomUUID().slice(0, 8)}`;
    if ("fail" in reply) return fail(reply.fail, body, res, id);
    if ("status" in reply) {
      res.writeHead(reply.status, { "content-type": reply.contentType ?? "text/plain" }).end(reply.body);
      return;
    }
    if (body.stream) streamReply(reply, body, res, id, options);
    else jsonReply(reply, body, res, id);
  }

  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => server.once("listening", resolve).once("error", reject));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    get hungUp() {
      return hungUp;
    },
    requestHeaders,
    requestUrls,
    close: () =>
      new Promise<void>((resolve) => {
        // Hanging requests hold their sockets open; close them rather than wait.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A fake server answering each request with the next step of `queue`, which the test fills as
 * it goes (a function step is called with the request); an empty queue answers 500. */
export function startQueuedFakeOpenAI(queue: FakeStep[], options: FakeServerOptions = {}): Promise<FakeOpenAI> {
  const next = (request: ChatRequest): FakeReply | Promise<FakeReply> => {
    const step = queue.shift() ?? { fail: "http500" };
    return typeof step === "function" ? step(request) : step;
  };
  return startFakeOpenAI(Array.from({ length: 10_000 }, () => next), options);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

const usageOf = (u: FakeUsage = DEFAULT_USAGE) => ({ ...u, total_tokens: u.prompt_tokens + u.completion_tokens });

const toolCallsOf = (reply: { toolCalls: FakeToolCall[] }, completionId: string) =>
  reply.toolCalls.map((call, i) => ({
    id: call.id ?? `call_${completionId.slice(-8)}_${i}`,
    type: "function",
    function: { name: call.name, arguments: call.rawArgs ?? JSON.stringify(call.args) },
  }));

type Answer = Extract<FakeReply, { content: string } | { toolCalls: FakeToolCall[] }>;
const finishOf = (reply: Answer) => reply.finishReason ?? ("content" in reply ? "stop" : "tool_calls");

function jsonReply(reply: Answer, body: ChatRequest, res: ServerResponse, id: string) {
  const message =
    "content" in reply ? { role: "assistant", content: reply.content } : { role: "assistant", content: reply.preamble ?? null, tool_calls: toolCallsOf(reply, id) };
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message, finish_reason: finishOf(reply) }],
      ...(reply.usage !== null && { usage: usageOf(reply.usage) }),
    }),
  );
}

function streamReply(reply: Answer, body: ChatRequest, res: ServerResponse, id: string, options: FakeServerOptions) {
  const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: body.model };
  const send = (choices: unknown[], extra: Record<string, unknown> = {}) => res.write(`data: ${JSON.stringify({ ...base, choices, ...extra })}\n\n`);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  send([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
  if ("content" in reply) {
    const pieces = reply.chunks ?? reply.content.match(/\s*\S+/g) ?? [reply.content];
    for (const piece of pieces) send([{ index: 0, delta: { content: piece }, finish_reason: null }]);
  } else {
    for (const piece of reply.preamble?.match(/\s*\S+/g) ?? []) send([{ index: 0, delta: { content: piece }, finish_reason: null }]);
    toolCallsOf(reply, id).forEach((call, index) => {
      // Arguments arrive in two pieces, as most servers split them (Ollama sends them whole).
      const args = call.function.arguments;
      const half = options.wholeToolCallChunks ? args.length : Math.floor(args.length / 2);
      send([{ index: 0, delta: { tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: args.slice(0, half) } }] }, finish_reason: null }]);
      if (half < args.length) send([{ index: 0, delta: { tool_calls: [{ index, function: { arguments: args.slice(half) } }] }, finish_reason: null }]);
    });
  }
  send([{ index: 0, delta: {}, finish_reason: finishOf(reply) }]);
  if (body.stream_options?.include_usage && options.streamUsage !== false && reply.usage !== null) send([], { usage: usageOf(reply.usage) });
  res.end("data: [DONE]\n\n");
}

const firstChunk = (id: string, body: ChatRequest) =>
  `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model: body.model, choices: [{ index: 0, delta: { role: "assistant", content: "Partial" }, finish_reason: null }] })}\n\n`;

function fail(mode: FakeFailure, body: ChatRequest, res: ServerResponse, id: string) {
  switch (mode) {
    case "not_openai":
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ service: "inventory", version: "2.1", items: [] }));
      return;
    case "html":
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end("<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>");
      return;
    case "cut":
      if (body.stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(firstChunk(id, body));
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.write(`{"id": "${id}", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Part`);
      }
      // Sent before the socket goes, so the client has read the start of the answer.
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    case "flood": {
      const filler = "x".repeat(64 * 1024);
      const piece = body.stream
        ? `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model: body.model, choices: [{ index: 0, delta: { content: filler }, finish_reason: null }] })}\n\n`
        : filler;
      res.writeHead(200, { "content-type": body.stream ? "text/event-stream" : "application/json" });
      if (!body.stream) res.write(`{"id": "${id}", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "`);
      let sent = 0;
      // Written as fast as the client reads, never faster (backpressure), until it hangs up.
      const pump = () => {
        while (!res.destroyed && sent < 1024 && res.write(piece)) sent++;
        if (!res.destroyed && sent < 1024) res.once("drain", pump);
      };
      pump();
      return;
    }
    case "giant_event": {
      const filler = "x".repeat(64 * 1024);
      const [start, end] = body.stream
        ? [`data: {"id": "${id}", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "`, '"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n']
        : [`{"id": "${id}", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "`, '"}, "finish_reason": "stop"}]}'];
      res.writeHead(200, { "content-type": body.stream ? "text/event-stream" : "application/json" });
      res.write(start);
      let sent = 0;
      // Written as fast as the client reads, never faster (backpressure).
      const pump = () => {
        while (!res.destroyed && sent < 192) {
          sent++;
          if (!res.write(filler)) return void res.once("drain", pump);
        }
        if (!res.destroyed) res.end(end);
      };
      pump();
      return;
    }
    case "ended":
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(firstChunk(id, body));
      return;
    case "busy":
      res.writeHead(429, { "content-type": "application/json", "retry-after": "30" });
      res.end(JSON.stringify({ error: { message: "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded" } }));
      return;
    case "http500":
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "The fake model server failed on purpose", type: "server_error" } }));
      return;
    case "malformed":
      if (body.stream) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.end(`data: {"id": "${id}", "choices": [{"delta": {"content": "trunc\n\ndata: [DONE]\n\n`);
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(`{"id": "${id}", "choices": [`);
      }
      return;
    case "hang":
      return; // the socket stays open until the client gives up or close() runs
    case "stall":
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(firstChunk(id, body));
      return;
  }
}

/** The text of a message as the model saw it. */
export function textOf(message: ChatMessageBody | undefined): string {
  if (!message || message.content === null) return "";
  if (typeof message.content === "string") return message.content;
  return message.content.map((part) => part.text ?? "").join("");
}

/** The system prompt of a request. */
export const systemPromptOf = (request: ChatRequest | undefined): string => textOf(request?.messages.find((m) => m.role === "system"));

/** Tool results the model received in this request, in order. */
export const toolResultsOf = (request: ChatRequest | undefined): string[] =>
  (request?.messages ?? []).filter((m) => m.role === "tool").map(textOf);

/** The newest tool result in a request. */
export const lastToolResult = (request: ChatRequest | undefined): string => toolResultsOf(request).at(-1) ?? "";
