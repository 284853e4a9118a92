// The model client's fetch: it reads each raw HTTP answer before the OpenAI SDK does, so a
// server that is not an OpenAI-compatible one (a web page, another API, a proxy's error page)
// is named for what it answered instead of failing deep inside the client with a TypeError.

import { nestsDeeperThan } from "../src/json-depth.js";

/** Why a model call failed, in one word the API and the logs share. */
export type ModelFailureReason =
  | "connection_refused"
  | "dns_failure"
  | "connection_failed"
  | "tls_failure"
  | "http_status"
  | "not_chat_completion"
  | "stream_cut_off"
  | "server_error_event"
  | "timeout";

/** A failure judged from what the server did; `detail` completes "The model server at URL failed: ...". */
export class ModelServerFailure extends Error {
  constructor(
    readonly reason: ModelFailureReason,
    readonly detail: string,
    readonly status?: number,
  ) {
    // The SDK reports any thrown error whose text says "timed out" as a timeout, and a body
    // excerpt may say anything: the message stays the bare reason, the words live in `detail`.
    super(reason);
    this.name = "ModelServerFailure";
  }
}

/** A chat completion is a few KB; more than this is not one, and is not buffered further. */
const MAX_REPLY_BYTES = 16 * 1024 * 1024;
const EXCERPT_CHARS = 200;

/** Excerpts of error bodies, by the Headers object the SDK's APIError keeps (the very same object). */
const errorBodies = new WeakMap<Headers, string>();

/** The start of an error response's body, for an APIError that came from this fetch. */
export const errorBodyOf = (headers: unknown): string | undefined => (headers instanceof Headers ? errorBodies.get(headers) : undefined);

/** Longest wait passed on: a server asking for more (a date years ahead, 1e23 seconds) is
 * asking for something no client should be told to do. */
const MAX_RETRY_AFTER_SECONDS = 3_600;
const SECONDS = /^\s*\d+(\.\d+)?\s*$/;
/** An HTTP date (RFC 9110's IMF-fixdate): Date.parse alone takes "-5" for a year. */
const HTTP_DATE = /^\s*[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\s*$/;

/** Whole seconds an error response asks the client to wait (Retry-After-Ms, or Retry-After in
 * seconds or as an HTTP date), at most MAX_RETRY_AFTER_SECONDS; undefined when it says nothing
 * that reads as one. */
export function retryAfterOf(headers: unknown): number | undefined {
  if (!(headers instanceof Headers)) return undefined;
  const ms = headers.get("retry-after-ms");
  const value = headers.get("retry-after");
  let seconds: number | undefined;
  if (ms !== null && SECONDS.test(ms)) seconds = Number.parseFloat(ms) / 1000;
  else if (value !== null && SECONDS.test(value)) seconds = Number.parseFloat(value);
  else if (value !== null && HTTP_DATE.test(value)) seconds = Math.max(0, (Date.parse(value) - Date.now()) / 1000);
  return seconds === undefined || !Number.isFinite(seconds) ? undefined : Math.min(MAX_RETRY_AFTER_SECONDS, Math.ceil(seconds));
}

/** Whitespace folded and cut to a short quote. */
export function excerpt(text: string, chars = EXCERPT_CHARS): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > chars ? `${flat.slice(0, chars)}…` : flat;
}

const kindOf = (contentType: string | null) => (contentType ? contentType.split(";")[0]!.trim() : "no content type");

/** The fetch given to the OpenAI client: error bodies kept for the message, plain answers
 * checked to be chat completions, streams checked to be event streams, all capped in size. */
export function checkedFetch(): typeof fetch {
  return async (input, init) => {
    // Looked up on every call rather than captured: tests watch globalThis.fetch.
    // Connection errors pass through as they are; the SDK wraps them and modelError reads their causes.
    const res = await globalThis.fetch(input, init);
    // Only chat completions are judged here; the client calls nothing else today.
    const url = input instanceof Request ? input.url : String(input);
    if (!new URL(url).pathname.endsWith("/chat/completions")) return res;
    const type = res.headers.get("content-type");
    if (!res.ok) {
      // The SDK makes its APIError (status, retry decisions) from this copy; the excerpt is
      // kept here because the SDK drops a JSON body that has no `error` field.
      const text = await readReply(res, init?.signal);
      const copy = new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
      errorBodies.set(copy.headers, excerpt(text) || "(empty body)");
      return copy;
    }
    if (isStreamRequest(init?.body)) {
      if (/^text\/event-stream/i.test(type ?? "")) return capped(res);
      const text = await readReply(res, init?.signal);
      throw new ModelServerFailure("not_chat_completion", `answered a streaming request with ${kindOf(type)} instead of an event stream: "${excerpt(text)}"`);
    }
    return new Response(checkedCompletion(res, init?.signal), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** The body of a plain completion, failing with the reason when it is not one. Read as the SDK
 * reads it, after the request's own timeout has ended: a body that stalls is the watchdog's. */
function checkedCompletion(res: Response, signal: AbortSignal | null | undefined): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      try {
        const text = await readReply(res, signal);
        const problem = chatCompletionProblem(text);
        if (problem) {
          const type = kindOf(res.headers.get("content-type"));
          throw new ModelServerFailure("not_chat_completion", `answered HTTP ${res.status} with ${type} ${problem}: "${excerpt(text)}"`);
        }
        controller.enqueue(new TextEncoder().encode(text));
        controller.close();
      } catch (err) {
        controller.error(err);
      }
    },
  });
}

const tooLarge = () => new ModelServerFailure("not_chat_completion", `answered more than ${MAX_REPLY_BYTES / 1024 / 1024} MiB, far more than a chat completion`);

/** A streamed chunk is a few KB, a tool call's arguments at most MAX_TOOL_ARGUMENT_CHARS
 * (256 KiB) in all: an event longer than this is not a chat completion chunk. */
const MAX_EVENT_BYTES = 1024 * 1024;
/** The blank lines that end an event, as the SDK's decoder finds them. */
const EVENT_ENDS = ["\n\n", "\r\r", "\r\n\r\n"].map((end) => Buffer.from(end));
/** Room for the start of an event's end in the bytes before a chunk. */
const SEAM_BYTES = 3;

/** The offset just past the last event end in `bytes`, or -1 when there is none. */
function pastLastEventEnd(bytes: Buffer): number {
  return Math.max(...EVENT_ENDS.map((end) => {
    const at = bytes.lastIndexOf(end);
    return at < 0 ? -1 : at + end.length;
  }));
}

/** An event stream that fails past MAX_REPLY_BYTES: a server that never stops sending must not
 * fill memory until the question's deadline. It fails too on an event past MAX_EVENT_BYTES: the
 * SDK looks for an event's end through all it holds of it on every chunk that arrives, so 12 MiB
 * in one event held the event loop for seconds (misread as the server's silence). The source is
 * cancelled, closing the connection. */
function capped(res: Response): Response {
  let size = 0;
  /** Bytes since the last event end, and the last few bytes read (an end may span two chunks). */
  let inEvent = 0;
  let seam = Buffer.alloc(0);
  const counted = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      size += chunk.byteLength;
      const bytes = Buffer.concat([seam, chunk]);
      const past = pastLastEventEnd(bytes);
      inEvent = past < 0 ? inEvent + chunk.byteLength : bytes.length - past;
      seam = bytes.subarray(-SEAM_BYTES);
      if (size > MAX_REPLY_BYTES) controller.error(tooLarge());
      else if (inEvent > MAX_EVENT_BYTES) {
        controller.error(new ModelServerFailure("not_chat_completion", `sent an event of more than ${MAX_EVENT_BYTES / 1024 / 1024} MiB (no blank line ending it), far more than a chat completion chunk`));
      } else controller.enqueue(chunk);
    },
  });
  return new Response(res.body?.pipeThrough(counted) ?? null, { status: res.status, statusText: res.statusText, headers: res.headers });
}

function isStreamRequest(body: unknown): boolean {
  if (typeof body !== "string") return false;
  try {
    return (JSON.parse(body) as { stream?: unknown }).stream === true;
  } catch {
    return false;
  }
}

/** A part of a message's content as the API defines it: an object, and text where it says so. */
const isContentPart = (part: unknown) =>
  typeof part === "object" && part !== null && ((part as { type?: unknown }).type !== "text" || typeof (part as { text?: unknown }).text === "string");

/** A completion's own nesting (choices[0].message.tool_calls[0].function.arguments is six
 * levels) with room for arguments sent as an object. */
const MAX_COMPLETION_DEPTH = 64;

/** Why `text` is not a chat completion, or null when it is one. */
function chatCompletionProblem(text: string): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return "that is not JSON, so not a chat completion";
  }
  if (nestsDeeperThan(body, MAX_COMPLETION_DEPTH)) return `that is not a chat completion (nested deeper than ${MAX_COMPLETION_DEPTH} levels)`;
  const reply = body as { choices?: unknown; error?: { message?: unknown } } | null;
  // Some proxies answer 200 with an OpenAI-style error body.
  if (reply && typeof reply === "object" && reply.error) return `carrying an error (${excerpt(String(reply.error.message ?? JSON.stringify(reply.error)), 120)})`;
  const first = Array.isArray(reply?.choices) ? (reply.choices[0] as { message?: unknown } | undefined) : undefined;
  if (!first || typeof first.message !== "object" || first.message === null) return "that is not a chat completion (no choices[0].message)";
  // The shapes the client reads without checking: wrong, they failed it as a TypeError (read
  // as a failed connection) deep inside.
  const message = first.message as { content?: unknown; tool_calls?: unknown };
  const content = message.content;
  if (content !== undefined && content !== null && typeof content !== "string" && !Array.isArray(content)) {
    return "that is not a chat completion (choices[0].message.content is neither text, parts nor null)";
  }
  if (Array.isArray(content) && !content.every(isContentPart)) {
    return "that is not a chat completion (a part of choices[0].message.content is not an object, or a text part has no text)";
  }
  const calls = message.tool_calls;
  if (calls !== undefined && calls !== null) {
    if (!Array.isArray(calls)) return "that is not a chat completion (choices[0].message.tool_calls is not a list)";
    if (!calls.every((c: unknown) => typeof c === "object" && c !== null && typeof (c as { function?: unknown }).function === "object" && (c as { function: unknown }).function !== null)) {
      return "that is not a chat completion (a tool call in choices[0].message.tool_calls has no function)";
    }
  }
  return null;
}

/** The whole body as text, refused past MAX_REPLY_BYTES. An abort (the SDK's timeout, the
 * caller) passes through untouched so the SDK still recognises it; a connection that closes
 * midway is a cut-off answer. */
async function readReply(res: Response, signal: AbortSignal | null | undefined): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_REPLY_BYTES) {
        void reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      parts.push(value);
    }
  } catch (err) {
    if (err instanceof ModelServerFailure || signal?.aborted) throw err;
    throw new ModelServerFailure("stream_cut_off", `the connection closed before the answer was complete (${causeText(err)})`);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** The innermost message of an error chain ("terminated" tells less than "other side closed"). */
export function causeText(err: unknown): string {
  let text = String((err as Error)?.message ?? err);
  for (let e = (err as { cause?: unknown })?.cause, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const message = (e as Error).message;
    if (message) text = message;
  }
  return text;
}
