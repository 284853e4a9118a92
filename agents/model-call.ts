// One model call as the agent sees it, made the way the server's adapter says: tools or the
// fenced-SQL text protocol, streamed or not, one retry with what a refusal taught. Whatever the
// wire form, the graph gets the same thing back: an AIMessage whose tool calls are to be run
// (spelled-out calls and ```sql blocks included, marked as text calls), and usage, counted
// locally and marked as an estimate when the server sent none.

import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import type { InvalidToolCall, ToolCall } from "@langchain/core/messages/tool";

import { complete as serverCompletion, type ChatModel, type Completion, type CompletionOptions, type TokenUsage } from "./model.js";
import type { CallPlan } from "./model-server.js";
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
    const wire = wireMessages(messages, plan, model.server.profile.toolResultsAsUser, options.textProtocol);
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
      const usage = completion.usage.total_tokens > 0 ? completion.usage : estimateUsage(wire, tools, message);
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

const callAsText = (call: ToolCall) =>
  call.name === "run_query" && typeof call.args.sql === "string" ? `\`\`\`sql\n${call.args.sql}\n\`\`\`` : JSON.stringify({ name: call.name, arguments: call.args });

/** Forwards streamed text, except a reply that opens like a call written as text (a fence, a
 * tag, a JSON object, `functions.`): that one is held back, and if it turns out to be an answer
 * the graph sends it whole. The first characters decide. */
function gatedTokens(onToken: (text: string) => void, plan: CallPlan): (text: string) => void {
  if (!plan.readTextCalls) return onToken;
  const CALL_OPENINGS = ["```", "<", "{", "[", "functions."];
  let head = "";
  let state: "deciding" | "open" | "held" = "deciding";
  return (text) => {
    if (state === "open") return onToken(text);
    if (state === "held") return;
    head += text;
    const start = head.trimStart();
    if (start === "") return;
    if (CALL_OPENINGS.some((o) => start.startsWith(o))) state = "held";
    else if (!CALL_OPENINGS.some((o) => o.startsWith(start.slice(0, o.length)))) {
      state = "open";
      onToken(head);
    }
  };
}

/** Prompt: every message as sent plus the tool definitions; completion: the reply's text and
 * call arguments. */
function estimateUsage(wire: BaseMessage[], tools: CompletionOptions["tools"], reply: AIMessage): TokenUsage {
  let prompt = tools ? countTokens(JSON.stringify(tools)) : 0;
  for (const m of wire) prompt += TOKENS_PER_MESSAGE + countTokens(m.text) + (m instanceof AIMessage ? countTokens(JSON.stringify(m.tool_calls ?? [])) : 0);
  const completion = countTokens(reply.text) + (reply.tool_calls?.length && !isTextCall(reply) ? countTokens(JSON.stringify(reply.tool_calls.map((c) => c.args))) : 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, estimated: true };
}
