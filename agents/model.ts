// The chat model behind the agent: ChatOpenAI against any OpenAI-compatible server, configured
// only from resolved settings (never from the environment) and never reaching for the internet.

import { AIMessage, type AIMessageChunk, type BaseMessage } from "@langchain/core/messages";
import { ChatOpenAI, type ChatOpenAICallOptions } from "@langchain/openai";
import { AsyncCaller } from "@langchain/core/utils/async_caller";

import { isModelConfigured } from "../src/config.js";
import { DomainError } from "../src/errors.js";
import { answeredNoChatCompletion, modelError, serverLabel, type ModelServer } from "./model-errors.js";
import { checkedFetch, ModelServerFailure, retryAfterOf } from "./model-fetch.js";
import { ModelServerAdapter, resolveServer, type ModelServerName, type ToolProtocol } from "./model-server.js";
import { StreamedReply } from "./streamed-reply.js";
import { strictToolCalls } from "./tool-arguments.js";

export interface ModelSettings {
  /** e.g. http://localhost:11434/v1; unset means api.openai.com. */
  baseUrl?: string | undefined;
  apiKey?: string | undefined;
  model: string;
  temperature: number;
  /** Per request to the model server, and the longest silence allowed inside a streamed answer. */
  timeoutMs: number;
  maxTokens?: number | undefined;
  /** Whose quirks to adapt to (agents/model-server.ts); default auto. */
  server?: ModelServerName | undefined;
  /** Tool calls, the fenced-SQL text protocol, or both (default auto). */
  tools?: ToolProtocol | undefined;
  /** The model's context window in tokens; unset: the agent's own budgets apply as set. */
  contextTokens?: number | undefined;
}

/** The client, the adapter that knows how its server differs, and the model's context window. */
export type ChatModel = ChatOpenAI & { readonly server: ModelServerAdapter; readonly contextTokens: number | undefined };

const OPENAI_API = "https://api.openai.com/v1";

/** The most a reply may be: OPENAI_MAX_TOKENS, and at most a quarter of a known context window
 * (MODEL_CONTEXT_TOKENS), the room the prompt is sized to leave (context-budget.ts). A server
 * refuses to be asked for a reply that could not fit (vLLM: "'max_tokens' is too large"). */
const replyTokens = (maxTokens: number, contextTokens: number | undefined) =>
  contextTokens === undefined ? maxTokens : Math.min(maxTokens, Math.floor(contextTokens / 4));

/** `onAdapt` hears of each change the adapter makes to how calls are made (agents/model-server.ts). */
export function createChatModel(settings: ModelSettings, onAdapt?: (change: string, refusal: string) => void): ChatModel {
  if (!isModelConfigured(settings)) {
    throw new DomainError("model_not_configured", "No model is configured: set OPENAI_BASE_URL (any OpenAI-compatible server) or OPENAI_API_KEY");
  }
  const profile = resolveServer(settings.server ?? "auto", settings.baseUrl);
  const server = new ModelServerAdapter(profile, settings.tools ?? "auto", onAdapt);
  const client = new ChatOpenAI({
    model: settings.model,
    temperature: settings.temperature,
    ...(settings.maxTokens !== undefined ? { maxTokens: replyTokens(settings.maxTokens, settings.contextTokens) } : {}),
    timeout: settings.timeoutMs,
    // One retry absorbs a blip; more would hide a failing server behind minutes of backoff.
    maxRetries: 1,
    onFailedAttempt: retryOnlyShortWaits,
    // Local servers (Ollama, vLLM, llama.cpp) ignore the key but the client insists on one.
    // Passed explicitly so OPENAI_API_KEY / OPENAI_BASE_URL / LANGSMITH_GATEWAY in the
    // environment never override the resolved configuration.
    apiKey: settings.apiKey || "not-needed",
    // logLevel off: the SDK would write an unparsable event (the model's own text) to the
    // console twice, which Pulse logs as errors, beside the one line the failure already gets.
    configuration: { ...endpointOf(settings, profile.azureAuth), fetch: checkedFetch(), logLevel: "off" },
    // Usage comes from the server's own `usage` fields: the `usage` of a plain completion, or
    // stream_options.include_usage when streaming. `streaming` stays off: with it, `.invoke()`
    // would estimate usage with tiktoken data fetched from the internet.
    streamUsage: true,
    // Chat Completions is what every compatible server speaks.
    useResponsesApi: false,
  });
  return Object.assign(client, { server, contextTokens: settings.contextTokens });
}

/** LangChain's handler of a failed attempt, as every model gets it by default. */
class DefaultAttempts extends AsyncCaller {
  get handler() {
    return this.onFailedAttempt!;
  }
}
const defaultAttempt = new DefaultAttempts({}).handler;

/** LangChain retries after waiting as long as a server's Retry-After asks (up to a minute), and
 * that wait takes no signal: a 429 asking for 30 s held a question until ASK_TIMEOUT_MS, then
 * asked again for a client that might be gone. Past MAX_RETRY_WAIT_MS the call is not retried;
 * the client hears how long to wait instead (model-errors.ts). */
const MAX_RETRY_WAIT_MS = 2_000;

function retryOnlyShortWaits(error: unknown): void {
  // An answer that is no chat completion (a web page, another API, 16 MiB) is what that URL
  // serves, not a blip: asking again waited LangChain's backoff, 1-2 s, for the same answer.
  if (answeredNoChatCompletion(error)) throw error;
  const wait = retryAfterOf((error as { headers?: unknown } | null)?.headers);
  if (wait !== undefined && wait * 1000 > MAX_RETRY_WAIT_MS) throw error;
  defaultAttempt(error);
}

/** Where requests go. Azure's deployment URLs carry `?api-version=...` and want the key in an
 * `api-key` header: the query is kept on every request, the key sent both ways. */
function endpointOf(settings: ModelSettings, azureAuth: boolean) {
  const baseUrl = settings.baseUrl || OPENAI_API;
  if (!azureAuth) return { baseURL: baseUrl };
  const url = new URL(baseUrl);
  const defaultQuery = Object.fromEntries(url.searchParams);
  url.search = "";
  return {
    baseURL: url.toString().replace(/\/$/, ""),
    ...(Object.keys(defaultQuery).length > 0 && { defaultQuery }),
    ...(settings.apiKey && { defaultHeaders: { "api-key": settings.apiKey } }),
  };
}

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Counted locally (the server reported none): an estimate, not the server's count. */
  estimated: boolean;
}

export const NO_USAGE: TokenUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, estimated: false };

export interface CompletionOptions {
  /** The model's per-request timeout; also the longest silence allowed between streamed chunks. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Tool definitions offered to the model (OpenAI format, built once by the caller). Passed
   * with each call rather than through `bindTools()`, which wraps the model in one more Runnable. */
  tools?: ChatOpenAICallOptions["tools"];
  /** Sent with the tools when set (some servers ignore tools without it). */
  toolChoice?: "auto" | undefined;
}

export interface Completion {
  message: AIMessage;
  usage: TokenUsage;
}

/** Time for a whole answer or a first chunk: the request, one retry after p-retry's 1-2 s backoff, the retry. */
const firstChunkDeadline = (timeoutMs: number) => 2 * timeoutMs + 2500;

/**
 * One model call. Streams only when someone reads the tokens as they come (`onToken`): a
 * streamed answer costs a Runnable round per chunk (config, callback configuration, a chunk
 * object, a merge) that a plain completion does not, and usage comes from the server either way.
 */
export function complete(
  model: ChatOpenAI,
  messages: BaseMessage[],
  options: CompletionOptions & { onToken?: ((text: string) => void) | undefined },
): Promise<Completion> {
  return options.onToken ? streamCompletion(model, messages, options) : invokeCompletion(model, messages, options);
}

/** The server a model talks to, as errors and logs may name it. */
export function modelServerOf(model: ChatOpenAI): ModelServer {
  return { url: serverLabel(model.clientConfig?.baseURL ?? OPENAI_API), apiKey: typeof model.apiKey === "string" ? model.apiKey : undefined };
}

/** Runs `call` with an abort signal that the caller's signal and a watchdog both trip; failures
 * become DomainError model_timeout / model_failed naming the server, the caller's abort passes
 * through as is. `rearm(ms)` restarts the watchdog (a stream re-arms it on every chunk). */
async function underWatchdog<T>(
  model: ChatOpenAI,
  options: CompletionOptions,
  call: (signal: AbortSignal, rearm: (ms: number) => void) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const stopOnCallerAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", stopOnCallerAbort, { once: true });
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const rearm = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort(new Error("model answer stalled"));
    }, ms);
  };
  try {
    options.signal?.throwIfAborted();
    rearm(firstChunkDeadline(options.timeoutMs));
    return await call(controller.signal, rearm);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw modelError(err, modelServerOf(model), options.timeoutMs, stalled);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", stopOnCallerAbort);
  }
}

/** One plain (non-streamed) completion with usage from the server's `usage` field. The SDK's
 * timeout covers each request until its headers; the watchdog bounds the whole call. */
export async function invokeCompletion(model: ChatOpenAI, messages: BaseMessage[], options: CompletionOptions): Promise<Completion> {
  return underWatchdog(model, options, async (signal) => {
    const reply = await model.invoke(messages, { signal, ...toolOptions(options) });
    if (!reply.text && !reply.tool_calls?.length && !reply.invalid_tool_calls?.length && !reply.response_metadata?.finish_reason) {
      throw new ModelServerFailure("not_chat_completion", "it returned a chat completion with no text, no tool call and no finish_reason");
    }
    return completionOf(reply);
  });
}

/** One model call through `.stream()`, text passed to `onToken` as it arrives (until a tool call
 * starts), usage from the server's final chunk (stream_options.include_usage). */
export async function streamCompletion(
  model: ChatOpenAI,
  messages: BaseMessage[],
  options: CompletionOptions & { onToken?: ((text: string) => void) | undefined },
): Promise<Completion> {
  return underWatchdog(model, options, async (signal, rearm) => {
    const reply = new StreamedReply();
    // The SDK's timeout covers a request until its headers arrive; a stream that goes silent
    // afterwards would hang forever without the watchdog, re-armed on every chunk.
    const stream = await model.stream(messages, { signal, ...toolOptions(options) });
    for await (const chunk of stream) {
      rearm(options.timeoutMs);
      // Ending the loop ends the stream (its request is aborted).
      if (!reply.add(chunk)) break;
      const text = chunk.text;
      if (text && !reply.calling) options.onToken?.(text);
    }
    if (reply.empty) throw new ModelServerFailure("not_chat_completion", "its event stream ended without a single chat completion chunk");
    const merged = reply.message();
    // Every compatible server ends an answer with a finish_reason; a stream that stops without
    // one was cut off (a clean close midway), and its partial text or tool call must not count.
    if (!merged.response_metadata?.finish_reason) {
      throw new ModelServerFailure("stream_cut_off", "its event stream ended before the answer was finished (no finish_reason: stream cut off)");
    }
    return completionOf(merged);
  });
}

const toolOptions = (options: CompletionOptions): Partial<ChatOpenAICallOptions> =>
  options.tools ? { tools: options.tools, ...(options.toolChoice && { tool_choice: options.toolChoice }) } : {};

/** The completion of a server's reply. Made inside the watchdog: a reply whose tool calls fail
 * strictToolCalls (arguments past MAX_TOOL_ARGUMENT_CHARS) is the server's failure, named so. */
function completionOf(reply: AIMessage | AIMessageChunk): Completion {
  return { message: toMessage(reply), usage: usageOf(reply) };
}

/** A plain AIMessage without the server's id (a server that reuses ids would make LangGraph
 * replace an earlier message), its tool calls parsed strictly from the raw argument text (those
 * that do not parse are in `invalid_tool_calls` and never run) and each with an id. */
function toMessage(merged: AIMessage | AIMessageChunk): AIMessage {
  const { calls, invalid } = strictToolCalls(merged, `call_${Date.now().toString(36)}`);
  return new AIMessage({ content: merged.text, tool_calls: calls, invalid_tool_calls: invalid, response_metadata: merged.response_metadata });
}

/** A plain completion's usage_metadata leaves out fields the server sent as 0 (or all of them
 * when it sent no `usage`): count those as 0. Counts that are no token count (negative,
 * fractional, past 2^53: a broken server's) are taken as none sent, so the reply is counted
 * locally: they would fail the metrics' counters and the user's usage. */
function usageOf(reply: AIMessage | AIMessageChunk): TokenUsage {
  const u = reply.usage_metadata;
  if (!u) return NO_USAGE;
  const prompt = u.input_tokens ?? 0;
  const completion = u.output_tokens ?? 0;
  const total = u.total_tokens ?? prompt + completion;
  if (![prompt, completion, total].every(isTokenCount)) return NO_USAGE;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total, estimated: false };
}

const isTokenCount = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
