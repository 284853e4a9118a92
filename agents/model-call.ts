// One model call as the agent sees it, made the way the server's adapter says: tools or the
// fenced-SQL text protocol, streamed or not, one retry with what a refusal taught. Whatever the
// wire form, the graph gets the same thing back: an AIMessage whose tool calls are to be run
// (spelled-out calls and ```sql blocks included, marked as text calls), and usage, counted
// locally and marked as an estimate when the server sent none.

import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import type { InvalidToolCall, ToolCall } from "@langchain/core/messages/tool";

import { complete as serverCompletion, type ChatModel, type Completion, type CompletionOptions, type TokenUsage } from "./model.js";
import type { CallPlan } from "./model-server.js";
import { estimateTokens } from "./schema-index.js";
import { callsInText } from "./text-calls.js";
import { countTokens, TOKENS_PER_MESSAGE } from "./token-count.js";

export interface AgentCallOptions extends Omit<CompletionOptions, "toolChoice"> {
  onToken?: ((text: string) => void) | undefined;
  /** Tool names the model may call (for reading calls out of text). */
  offered: readonly string[];
  /** The text protocol's instructions, added to the system prompt when it is in use. */
  textProtocol: string;
}

/** Set on an AIMessage whose calls were read from its text: it goes back to the server as the
 * text it was, and its results as a user message. */
const TEXT_CALL = "pulse_text_call";

/** Whether a reply's calls were read from its text. */
export const isTextCall = (message: AIMessage) => message.additional_kwargs?.[TEXT_CALL] === true;

export async function completeStep(model: ChatModel, messages: BaseMessage[], options: AgentCallOptions): Promise<Completion> {
  for (let attempt = 0; ; attempt++) {
    const plan = model.server.plan(Boolean(options.onToken));
    const wire = fitToContext(wireMessages(messages, plan, model.server.profile.toolResultsAsUser, options.textProtocol), model);
    const tools = plan.protocol === "text" ? undefined : options.tools;
    try {
      const completion = await serverCompletion(model, wire, {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        tools,
        toolChoice: plan.toolChoice,
        onToken: plan.stream && options.onToken ? gatedTokens(options.onToken, plan) : undefined,
      });
      const message = plan.readTextCalls ? withTextCalls(completion.message, plan, options.offered) : completion.message;
      const usage = completion.usage.total_tokens > 0 ? completion.usage : await estimateUsage(wire, tools, message);
      return { message, usage };
    } catch (err) {
      if (attempt === 0 && model.server.learn(err, plan)) continue;
      throw err;
    }
  }
}

/** A text reply read as calls: the text stays the message's content; calls that were cut off or
 * malformed are listed as invalid (they never run, the model is told why). */
function withTextCalls(message: AIMessage, plan: CallPlan, offered: readonly string[]): AIMessage {
  if ((message.tool_calls?.length ?? 0) > 0 || (message.invalid_tool_calls?.length ?? 0) > 0) return message;
  const found = callsInText(message.text, { offered, anySqlBlock: plan.protocol === "text" });
  if (found.length === 0) return message;
  const stamp = `text_${Date.now().toString(36)}`;
  const calls: ToolCall[] = [];
  const invalid: InvalidToolCall[] = [];
  found.forEach((call, i) => {
    const id = `${stamp}_${i}`;
    if ("args" in call) calls.push({ name: call.name, args: call.args, id, type: "tool_call" });
    else {
      // Listed among the calls too: every call gets an answer, this one an ERROR.
      calls.push({ name: call.name, args: {}, id, type: "tool_call" });
      invalid.push({ name: call.name, args: call.raw, id, error: call.error, type: "invalid_tool_call" });
    }
  });
  return new AIMessage({
    content: message.text,
    tool_calls: calls,
    invalid_tool_calls: invalid,
    additional_kwargs: { [TEXT_CALL]: true },
    response_metadata: message.response_metadata,
  });
}

/**
 * The messages as this call's server and protocol take them. Under the text protocol nothing
 * tool-shaped goes out: earlier calls are written as the ```sql block (or JSON) they were, their
 * results as user messages. Calls read from text always go back as text.
 */
export function wireMessages(messages: BaseMessage[], plan: CallPlan, toolResultsAsUser: boolean, textProtocol: string): BaseMessage[] {
  const textCalls = new Set<string>();
  return messages.map((m) => {
    if (m instanceof SystemMessage && plan.protocol === "text") return new SystemMessage(`${m.text}\n\n${textProtocol}`);
    if (m instanceof AIMessage && (m.tool_calls?.length ?? 0) > 0) {
      const fromText = isTextCall(m);
      if (!fromText && plan.protocol !== "text") return m;
      for (const call of m.tool_calls ?? []) if (call.id) textCalls.add(call.id);
      return new AIMessage(fromText ? m.text : [m.text, ...(m.tool_calls ?? []).map(callAsText)].filter(Boolean).join("\n\n"));
    }
    if (m instanceof ToolMessage && (textCalls.has(m.tool_call_id) || toolResultsAsUser)) {
      return new HumanMessage(`[${m.name ?? "tool"} result]\n${m.text}`);
    }
    return m;
  });
}

/** Room for the tool definitions and the server's own tool prompt around them. */
const TOOL_PROMPT_TOKENS = 400;
const OMITTED = "(an earlier result, left out to fit the model's context window)";

/**
 * With MODEL_CONTEXT_TOKENS set, results of earlier steps are left out, oldest first, until the
 * request (by the schema budget's estimate) leaves room for the answer: each step adds a result,
 * and the window holds only so many. The newest result always stays.
 */
function fitToContext(wire: BaseMessage[], model: ChatModel): BaseMessage[] {
  if (model.contextTokens === undefined) return wire;
  const room = model.contextTokens - TOOL_PROMPT_TOKENS - Math.min(model.maxTokens ?? 512, Math.floor(model.contextTokens / 4));
  const isResult = (m: BaseMessage) => m instanceof ToolMessage || (m instanceof HumanMessage && m.text.startsWith("["));
  const results = wire.flatMap((m, i) => (isResult(m) ? [i] : [])).slice(0, -1);
  const fitted = [...wire];
  let total = fitted.reduce((sum, m) => sum + TOKENS_PER_MESSAGE + estimateTokens(m.text), 0);
  for (const i of results) {
    if (total <= room) break;
    const m = fitted[i]!;
    total -= estimateTokens(m.text) - estimateTokens(OMITTED);
    fitted[i] = m instanceof ToolMessage ? new ToolMessage({ content: OMITTED, tool_call_id: m.tool_call_id, name: m.name }) : new HumanMessage(`${m.text.split("\n")[0]}\n${OMITTED}`);
  }
  return fitted;
}

const callAsText = (call: ToolCall) =>
  call.name === "run_query" && typeof call.args.sql === "string" ? `\`\`\`sql\n${call.args.sql}\n\`\`\`` : JSON.stringify({ name: call.name, arguments: call.args });

/** Forwards streamed text, except a reply that opens like a call written as text (a fence, a
 * tag, a JSON object, `functions.`): that one is held back, and if it turns out to be an answer
 * the graph sends it whole. The first characters decide. */
export function gatedTokens(onToken: (text: string) => void, plan: Pick<CallPlan, "readTextCalls">): (text: string) => void {
  if (!plan.readTextCalls) return onToken;
  const CALL_OPENINGS = ["```", "<", "{", "[", "functions."];
  /** The white space before the first character, and the text from it on: kept apart, so that a
   * reply opening with a long run of spaces is not trimmed again at every chunk (quadratic). */
  let blank = "";
  let start = "";
  let state: "deciding" | "open" | "held" = "deciding";
  return (text) => {
    if (state === "open") return onToken(text);
    if (state === "held") return;
    if (start === "") {
      start = text.trimStart();
      blank += text.slice(0, text.length - start.length);
      if (start === "") return;
    } else start += text;
    if (CALL_OPENINGS.some((o) => start.startsWith(o))) state = "held";
    else if (!CALL_OPENINGS.some((o) => o.startsWith(start.slice(0, o.length)))) {
      state = "open";
      onToken(blank + start);
    }
  };
}

/** Prompt: every message as sent plus the tool definitions; completion: the reply's text and
 * call arguments. */
async function estimateUsage(wire: BaseMessage[], tools: CompletionOptions["tools"], reply: AIMessage): Promise<TokenUsage> {
  const promptTexts = [tools ? JSON.stringify(tools) : "", ...wire.flatMap((m) => [m.text, m instanceof AIMessage ? JSON.stringify(m.tool_calls ?? []) : ""])];
  const completionTexts = [reply.text, reply.tool_calls?.length && !isTextCall(reply) ? JSON.stringify(reply.tool_calls.map((c) => c.args)) : ""];
  const counts = await countTokens([...promptTexts, ...completionTexts]);
  const sum = (from: number, to?: number) => counts.slice(from, to).reduce((total, n) => total + n, 0);
  const prompt = wire.length * TOKENS_PER_MESSAGE + sum(0, promptTexts.length);
  const completion = sum(promptTexts.length);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, estimated: true };
}
