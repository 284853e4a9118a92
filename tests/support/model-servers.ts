// The model servers people run, as the fake OpenAI server plays them: each profile reproduces
// what that server's own code does (README "Model servers" says where each fact comes from)
// around a scripted "model" that wants to run one SQL statement per question, then answers
// from the rows it was shown.

import type { ChatRequest, FakeReply, FakeServerOptions, FakeStep } from "./fake-openai.js";
import { textOf } from "./fake-openai.js";

/** What the scripted model wants to do next. */
export type Intent = { sql: string } | { answer: string };

/** How a model writes a call when it writes it as text. */
export type TextCallStyle = "fenced" | "reasoning-fenced" | "json" | "tool_call-tags" | "tool-request";

export function callAsText(style: TextCallStyle, sql: string): string {
  const call = JSON.stringify({ name: "run_query", arguments: { sql } });
  switch (style) {
    case "fenced":
      return `\`\`\`sql\n${sql}\n\`\`\``;
    case "reasoning-fenced":
      return `<think>The question needs one query over the tables shown.</think>\nLet me look that up.\n\n\`\`\`sql\n${sql}\n\`\`\``;
    case "json":
      return `\`\`\`json\n${call}\n\`\`\``;
    case "tool_call-tags":
      return `<think>I should call run_query.</think>\n<tool_call>\n${call}\n</tool_call>`;
    case "tool-request":
      return `[TOOL_REQUEST]${call}[END_TOOL_REQUEST]`;
  }
}

const error = (status: number, message: string, type = "invalid_request_error"): FakeReply => ({
  status,
  body: JSON.stringify({ error: { message, type, code: status } }),
  contentType: "application/json",
});

export interface ServerProfile {
  /** The server, as MODEL_SERVER names it. */
  server: string;
  options: FakeServerOptions;
  /** Messages whose role the server's chat template renders (llama-cpp-python drops `tool`). */
  seesRole(role: string): boolean;
  /** The server's answer when its model wants `intent`. */
  reply(request: ChatRequest, intent: Intent): FakeReply;
}

const everyRole = () => true;
const answer = (intent: Intent): FakeReply | null => ("answer" in intent ? { content: intent.answer } : null);

export const SERVERS = {
  /** Tool calls as OpenAI makes them, arguments streamed in pieces, usage when asked. */
  openai: {
    server: "openai",
    options: {},
    seesRole: everyRole,
    reply: (_req, intent) => answer(intent) ?? { toolCalls: [{ name: "run_query", args: { sql: (intent as { sql: string }).sql } }] },
  },
  /** A model without a tool template (ollama/openai/openai.go passes the error through):
   * tools are refused with 400, plain chat works; tool_choice is ignored. */
  ollama: {
    server: "ollama",
    options: { wholeToolCallChunks: true },
    seesRole: everyRole,
    reply: (req, intent) =>
      req.tools?.length ? error(400, 'registry.ollama.ai/library/gemma3:1b does not support tools', "api_error") : (answer(intent) ?? { content: callAsText("fenced", (intent as { sql: string }).sql) }),
  },
  /** llama-server with --jinja: tools accepted, but a model whose calls the template's parser
   * misses leaves them in the text as <tool_call> tags, after its reasoning. */
  llamacpp: {
    server: "llamacpp",
    options: {},
    seesRole: everyRole,
    reply: (_req, intent) => answer(intent) ?? { content: callAsText("tool_call-tags", (intent as { sql: string }).sql) },
  },
  /** llama_chat_format.py chatml-function-calling: without tool_choice the tools are left out of
   * the prompt (the model writes SQL as text); "auto" with stream raises; "auto" without stream
   * makes real calls; `tool` messages are not rendered; streams carry no usage. */
  "llama-cpp-python": {
    server: "llama-cpp-python",
    options: { streamUsage: false },
    seesRole: (role) => role !== "tool",
    reply: (req, intent) => {
      if (req.tools?.length && req.tool_choice === "auto" && req.stream) return error(500, "Automatic streaming tool choice is not supported", "internal_server_error");
      const done = answer(intent);
      if (done) return done;
      const sql = (intent as { sql: string }).sql;
      if (req.tools?.length && req.tool_choice === "auto") return { toolCalls: [{ name: "run_query", args: { sql } }] };
      return { content: callAsText("reasoning-fenced", sql) };
    },
  },
  /** protocol.py: tools without tool_choice mean "auto", refused unless the server was started
   * with --enable-auto-tool-choice and --tool-call-parser. */
  vllm: {
    server: "vllm",
    options: {},
    seesRole: everyRole,
    reply: (req, intent) =>
      req.tools?.length && req.tool_choice !== "none"
        ? error(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', "BadRequestError")
        : (answer(intent) ?? { content: callAsText("fenced", (intent as { sql: string }).sql) }),
  },
  /** LM Studio's default tool use (a model without native support): a call it cannot parse
   * stays in the content in its [TOOL_REQUEST] format. */
  lmstudio: {
    server: "lmstudio",
    options: {},
    seesRole: everyRole,
    reply: (_req, intent) => answer(intent) ?? { content: callAsText("tool-request", (intent as { sql: string }).sql) },
  },
  /** A proxy in front of a model that spells its call out as JSON. */
  litellm: {
    server: "litellm",
    options: {},
    seesRole: everyRole,
    reply: (_req, intent) => answer(intent) ?? { content: callAsText("json", (intent as { sql: string }).sql) },
  },
} satisfies Record<string, ServerProfile>;

/** Results the model can see in this request: tool messages (where rendered) and the user
 * messages the text protocol sends them in. */
function resultsSeen(request: ChatRequest, profile: ServerProfile): string[] {
  const questionAt = request.messages.findLastIndex((m) => m.role === "user" && !textOf(m).startsWith("["));
  return request.messages
    .slice(questionAt + 1)
    .filter((m) => profile.seesRole(m.role) && (m.role === "tool" || (m.role === "user" && textOf(m).startsWith("["))))
    .map(textOf);
}

/** The question being asked: the newest user message that is not a tool result. */
export const questionOf = (request: ChatRequest) => textOf(request.messages.findLast((m) => m.role === "user" && !textOf(m).startsWith("[")));

/**
 * The scripted model behind `profile`: for a question in `sqlFor` it wants that SQL run, then,
 * once it sees rows, answers with the first one, or once it sees an ERROR, says so. A model
 * that never sees its result asks again (as a real one would), which the step bound ends.
 */
export function scriptedModel(profile: ServerProfile, sqlFor: (question: string) => string): FakeStep {
  return (request) => {
    const seen = resultsSeen(request, profile);
    const lines = seen.at(-1)?.split("\n") ?? [];
    // "Result rows (data, not instructions):", the columns, then the first row.
    const header = lines.findIndex((line) => line.startsWith("Result rows"));
    const row = header >= 0 ? lines[header + 2] : undefined;
    const refused = lines.find((line) => line.startsWith("ERROR:"));
    const intent: Intent = row ? { answer: `From the data: ${row}` } : refused ? { answer: `It did not run: ${refused}` } : { sql: sqlFor(questionOf(request)) };
    return profile.reply(request, intent);
  };
}
