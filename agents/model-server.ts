// The one place that knows how each OpenAI-compatible server differs (README "Model servers"):
// whether to send tool_choice, whether a request with tools may be streamed, whether streams
// carry usage, and which refusals mean "this server or model has no tool calling". The graph
// never branches on the server; it asks this adapter how to make each call.

import { DomainError } from "../src/errors.js";

export const MODEL_SERVERS = ["auto", "openai", "azure", "ollama", "llamacpp", "llama-cpp-python", "vllm", "lmstudio", "litellm"] as const;
export type ModelServerName = (typeof MODEL_SERVERS)[number];
export type KnownServer = Exclude<ModelServerName, "auto">;

/** native: tool calls only; text: one ```sql block per reply (no tools sent); auto: tools, with
 * text replies that spell out a call (JSON, <tool_call> tags, a closing ```sql block) taken as
 * calls, and the text protocol for REFUSAL_HOLDS_MS once the server refuses tools. */
export const TOOL_PROTOCOLS = ["auto", "native", "text"] as const;
export type ToolProtocol = (typeof TOOL_PROTOCOLS)[number];

export interface ServerProfile {
  name: KnownServer;
  /** Sent with every request that carries tools; undefined sends none (the server's default). */
  toolChoice: "auto" | undefined;
  /** Whether a request carrying tools may be streamed. */
  streamTools: boolean;
  /** Whether tool results go back as user messages, for templates that drop the `tool` role. */
  toolResultsAsUser: boolean;
  /** The key also goes in an `api-key` header and the base URL's query (api-version) on every
   * request: Azure's deployment URLs want both; its /openai/v1 URL takes the usual bearer key. */
  azureAuth: boolean;
}

const standard = { toolChoice: undefined, streamTools: true, toolResultsAsUser: false, azureAuth: false } as const;

/** Each server as its own code behaves (the README's matrix says where each fact comes from). */
export const PROFILES: Record<KnownServer, ServerProfile> = {
  openai: { name: "openai", ...standard },
  azure: { name: "azure", ...standard, azureAuth: true },
  // openai/openai.go: ChatCompletionRequest has no tool_choice field (ignored); tool calls come
  // whole in one chunk; stream_options.include_usage honoured. A model without tool support
  // answers 400 "... does not support tools".
  ollama: { name: "ollama", ...standard },
  // tools/server/server-common.cpp: tool_choice defaults to "auto"; without --jinja (older
  // builds' default) tools are refused ("tools param requires --jinja flag").
  llamacpp: { name: "llamacpp", ...standard, toolChoice: "auto" },
  // llama_cpp/llama_chat_format.py, chatml-function-calling: no tool_choice drops the tools from
  // the prompt; "auto" with stream raises "Automatic streaming tool choice is not supported";
  // its template renders no `tool` messages. Streams never carry usage (no stream_options).
  "llama-cpp-python": { name: "llama-cpp-python", toolChoice: "auto", streamTools: false, toolResultsAsUser: true, azureAuth: false },
  // entrypoints/openai/chat_completion/protocol.py: tools without tool_choice mean "auto", which
  // is refused with 400 unless the server runs with --enable-auto-tool-choice --tool-call-parser.
  vllm: { name: "vllm", ...standard, toolChoice: "auto" },
  lmstudio: { name: "lmstudio", ...standard, toolChoice: "auto" },
  litellm: { name: "litellm", ...standard, toolChoice: "auto" },
};

/** The profile for a setting; `auto` goes by the base URL (no URL: OpenAI itself). */
export function resolveServer(name: ModelServerName, baseUrl: string | undefined): ServerProfile {
  if (name !== "auto") return PROFILES[name];
  if (!baseUrl) return PROFILES.openai;
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return PROFILES.openai;
  }
  if (/\.(openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)$/i.test(url.hostname)) return PROFILES.azure;
  if (url.port === "11434") return PROFILES.ollama;
  return PROFILES.openai;
}

/** How one model call is made. */
export interface CallPlan {
  /** text: no tools on the wire, the fenced-SQL protocol in the system prompt. */
  protocol: "native" | "text";
  stream: boolean;
  toolChoice: "auto" | undefined;
  /** Whether a text reply may be read as a call (never in native mode: SQL in an answer is not a call). */
  readTextCalls: boolean;
}

/** Refusals that say the server (or this model) has no tool calling at all. */
const NO_TOOLS = [
  /tool choice requires --enable-auto-tool-choice/i, // vLLM without a tool parser
  /tools? param requires --jinja/i, // llama-server without --jinja
  /tool_choice param requires --jinja/i,
  /does not support tools/i, // Ollama, a model without a tool template
  /tools? (?:are|is) not supported/i,
  /does not support (?:function|tool) call/i,
];
/** Refusals that say tools work, but not streamed. */
const NO_STREAMED_TOOLS = [/streaming tool choice is not supported/i, /tools? (?:are|is) not supported (?:when|with|in) stream/i];

/** How long what a refusal taught holds. Then the refused way is tried again (one refused call,
 * retried the learnt way), so a server changed meanwhile (llama-server restarted with --jinja,
 * a model with a tool template pulled) gets tools back without a restart of Pulse, and a
 * refusal that was not what it seemed (a server's message quoting what a user wrote) costs
 * every user of the process the text protocol for this long only. */
export const REFUSAL_HOLDS_MS = 10 * 60_000;

/** One per configured model: the profile, the protocol setting, and what the server's own
 * refusals taught (kept REFUSAL_HOLDS_MS, so each is paid for once in that time). */
export class ModelServerAdapter {
  /** Epoch ms until which the refusals hold (0: none). */
  private toolsRefusedUntil = 0;
  private streamedToolsRefusedUntil = 0;

  constructor(
    readonly profile: ServerProfile,
    readonly protocol: ToolProtocol,
    /** Told of each change to how calls are made, with the server's refusal that taught it. */
    private readonly onAdapt: (change: string, refusal: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  plan(wantsStream: boolean): CallPlan {
    const now = this.now();
    const text = this.protocol === "text" || (this.protocol === "auto" && now < this.toolsRefusedUntil);
    // The text protocol is not streamed: a reply is a call or an answer only once it is whole,
    // and a call must not reach the client as answer tokens.
    const stream = wantsStream && !text && this.profile.streamTools && now >= this.streamedToolsRefusedUntil;
    return { protocol: text ? "text" : "native", stream, toolChoice: text ? undefined : this.profile.toolChoice, readTextCalls: this.protocol !== "native" };
  }

  /** Whether a failed call is worth one retry with what its refusal taught (a 4xx/5xx from the
   * server naming tools); the retry's plan comes from `plan()` again. */
  learn(err: unknown, plan: CallPlan): boolean {
    if (!(err instanceof DomainError) || err.code !== "model_failed" || plan.protocol === "text") return false;
    const status = err.extra.model_status;
    if (typeof status !== "number" || status < 400) return false;
    if (plan.stream && NO_STREAMED_TOOLS.some((re) => re.test(err.message))) {
      this.streamedToolsRefusedUntil = this.now() + REFUSAL_HOLDS_MS;
      this.onAdapt(`tool calls are not streamed to this model server for ${REFUSAL_HOLDS_MS / 60_000} minutes`, err.message);
      return true;
    }
    if (this.protocol === "auto" && NO_TOOLS.some((re) => re.test(err.message))) {
      this.toolsRefusedUntil = this.now() + REFUSAL_HOLDS_MS;
      this.onAdapt(
        `switching to the text protocol (fenced SQL) for ${REFUSAL_HOLDS_MS / 60_000} minutes: this model server refused tool calls; set MODEL_TOOLS=text to start there`,
        err.message,
      );
      return true;
    }
    return false;
  }
}
