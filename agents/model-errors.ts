// Every way a model call can fail, turned into one DomainError that names the configured
// server and says what happened in words: 502 model_failed, or 504 model_timeout.

import { STATUS_CODES } from "node:http";

import { classifyRateLimitError } from "@langchain/core/utils/async_caller";

import { DomainError } from "../src/errors.js";
import { causeText, errorBodyOf, excerpt, ModelServerFailure, retryAfterOf, type ModelFailureReason } from "./model-fetch.js";

export interface ModelServer {
  /** The base URL as configured, without credentials or query (safe to show and log). */
  url: string;
  /** The API key, scrubbed from anything the server echoes back. */
  apiKey?: string | undefined;
}

/** A base URL fit to show: user, password and query (where keys hide) removed. */
export function serverLabel(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return "(an unparsable base URL)";
  }
}

interface Judged {
  reason: ModelFailureReason;
  words: string;
  status?: number | undefined;
}

/** Error codes of Node and undici found along a cause chain, and what they mean. */
const CODE_WORDS: Record<string, Omit<Judged, "status">> = {
  ECONNREFUSED: { reason: "connection_refused", words: "connection refused" },
  ENOTFOUND: { reason: "dns_failure", words: "DNS lookup failed: no such host" },
  EAI_AGAIN: { reason: "dns_failure", words: "DNS lookup failed: the resolver did not answer" },
  EAI_NONAME: { reason: "dns_failure", words: "DNS lookup failed: no such host" },
  ECONNRESET: { reason: "connection_failed", words: "the connection was reset" },
  EHOSTUNREACH: { reason: "connection_failed", words: "the host is unreachable" },
  ENETUNREACH: { reason: "connection_failed", words: "the network is unreachable" },
  EPIPE: { reason: "connection_failed", words: "the connection was closed while sending the request" },
  UND_ERR_SOCKET: { reason: "connection_failed", words: "the server closed the connection without answering" },
  UND_ERR_CONNECT_TIMEOUT: { reason: "timeout", words: "connecting timed out" },
  ETIMEDOUT: { reason: "timeout", words: "connecting timed out" },
};

function chainOf(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) chain.push(e);
  return chain;
}

/** Whether the server answered, with something that is not a chat completion. */
export const answeredNoChatCompletion = (err: unknown): boolean =>
  chainOf(err).some((e) => e instanceof ModelServerFailure && e.reason === "not_chat_completion");

function judge(err: unknown, stalled: boolean): Judged {
  const chain = chainOf(err);
  const failure = chain.find((e): e is ModelServerFailure => e instanceof ModelServerFailure);
  // A failure met while the watchdog was aborting the call is the silence, not its symptom.
  if (stalled) return { reason: "timeout", words: "" };
  if (failure) return { reason: failure.reason, words: failure.detail, status: failure.status };
  const top = err as { name?: string; message?: string; status?: unknown; headers?: unknown; error?: unknown };
  if (top.name === "TimeoutError" || top.name === "APIConnectionTimeoutError") return { reason: "timeout", words: "" };
  if (typeof top.status === "number") {
    const body = errorBodyOf(top.headers) ?? excerpt(String(top.message ?? "").replace(/^\d{3}\s*/, "").replace(/\s*Troubleshooting URL:.*$/s, ""));
    const name = STATUS_CODES[top.status] ? ` ${STATUS_CODES[top.status]}` : "";
    return { reason: "http_status", words: `HTTP ${top.status}${name}: "${body}"`, status: top.status };
  }
  // An `error` event inside a stream: the SDK makes an APIError without a status.
  if (top.name === "Error" && top.error && typeof top.error === "object") {
    return { reason: "server_error_event", words: `it sent an error in the middle of the answer: "${excerpt(String((top.error as { message?: unknown }).message ?? JSON.stringify(top.error)))}"` };
  }
  if (chain.some((e) => (e as Error).message === "terminated")) {
    return { reason: "stream_cut_off", words: `the connection closed in the middle of the answer (stream cut off: ${causeText(err)})` };
  }
  for (const e of chain) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    const known = CODE_WORDS[code];
    if (known) return { ...known, words: `${known.words} (${causeText(err)})` };
    if (/CERT|TLS|SSL|SELF_SIGNED/i.test(code)) return { reason: "tls_failure", words: `TLS failed: ${causeText(err)}` };
  }
  // fetch refuses the ports browsers block (9, 25, 6000 and others) before any connection.
  if (chain.some((e) => (e as Error).message === "bad port")) {
    return { reason: "connection_failed", words: `bad port: the HTTP client refuses to connect to this port (one of those browsers block, such as 9, 25 or 6000); serve the model on another port` };
  }
  if (chain.some((e) => e instanceof SyntaxError)) {
    return { reason: "not_chat_completion", words: `it sent a streamed event that is not JSON (${causeText(err)})` };
  }
  return { reason: "connection_failed", words: causeText(err) };
}

/** Removes the API key, bearer tokens, and the credentials or query of any URL from text a
 * server or the HTTP client may have echoed (a base URL with `user:pass@` is quoted whole). */
function scrub(text: string, apiKey: string | undefined): string {
  let clean = text
    .replace(/Bearer\s+[\w.~+/=-]+/gi, "Bearer [redacted]")
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@"]+@/gi, "$1")
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s?"]*)\?[^\s"]*/gi, "$1");
  if (apiKey && apiKey.length >= 4) clean = withoutKey(clean.split(apiKey).join("[redacted]"), apiKey);
  return clean.replace(/\bsk-[\w-]{8,}/g, "[redacted]");
}

/** Characters of the key that, found together in a text, are taken for (part of) the key. */
const KEY_PART_CHARS = 12;

/** `text` with every run of it that is a piece of `key` at least KEY_PART_CHARS long cut out: a
 * proxy that echoes the key reformatted (its prefix dropped, cut short) does not echo it whole. */
function withoutKey(text: string, key: string): string {
  if (key.length < KEY_PART_CHARS || text.length < KEY_PART_CHARS) return text;
  const parts = new Set<string>();
  for (let i = 0; i + KEY_PART_CHARS <= key.length; i++) parts.add(key.slice(i, i + KEY_PART_CHARS));
  const hidden = new Uint8Array(text.length);
  let found = false;
  for (let j = 0; j + KEY_PART_CHARS <= text.length; j++) {
    if (!parts.has(text.slice(j, j + KEY_PART_CHARS))) continue;
    hidden.fill(1, j, j + KEY_PART_CHARS);
    found = true;
  }
  if (!found) return text;
  let out = "";
  for (let j = 0; j < text.length; j++) {
    if (!hidden[j]) out += text[j];
    else if (j === 0 || !hidden[j - 1]) out += "[redacted]";
  }
  return out;
}

export function modelError(err: unknown, server: ModelServer, timeoutMs: number, stalled = false): DomainError {
  if (err instanceof DomainError) return err;
  const judged = judge(err, stalled);
  const where = `The model server at ${server.url}`;
  if (judged.reason === "timeout") {
    const how = judged.words ? `: ${scrub(judged.words, server.apiKey)}` : "";
    // The client tries a request that timed out once more (agents/model.ts), unless the
    // watchdog stopped a stream gone silent.
    const within = stalled ? `within ${timeoutMs} ms (OPENAI_TIMEOUT_MS)` : `within ${timeoutMs} ms on two tries (OPENAI_TIMEOUT_MS each)`;
    return new DomainError("model_timeout", `${where} did not answer ${within}${how}`, {
      timeout_ms: timeoutMs,
      model_server: server.url,
      model_cause: judged.reason,
    });
  }
  // Busy, and saying so: the client hears how long to wait, as from Pulse itself. Not a quota
  // or bill run out (a 429 too, which LangChain tells apart): waiting would not help.
  const wait = retryAfterOf((err as { headers?: unknown }).headers);
  const outOfQuota = classifyRateLimitError(err)?.action === "stop";
  if (!outOfQuota && (judged.status === 429 || (judged.status !== undefined && wait !== undefined))) {
    return new DomainError("model_rate_limited", `${where} is busy: ${scrub(judged.words, server.apiKey)}${wait !== undefined ? `; it asks to wait ${wait} s` : ""}`, {
      model_server: server.url,
      model_cause: judged.reason,
      model_status: judged.status,
      ...(wait !== undefined ? { retry_after_seconds: wait } : {}),
    });
  }
  return new DomainError("model_failed", `${where} failed: ${scrub(judged.words, server.apiKey)}`, {
    model_server: server.url,
    model_cause: judged.reason,
    ...(judged.status !== undefined ? { model_status: judged.status } : {}),
  });
}
