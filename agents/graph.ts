// The SQL agent: a hand-built LangGraph loop (agent -> tools -> agent) with a hard step bound.
// Nodes are plain async functions, routing is a pure function; the guard, not the prompt, keeps data safe.
// The graph is compiled once per process; what one ask needs travels in its config.

import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import type { RunnableConfig } from "@langchain/core/runnables";
// The /web entry is the same StateGraph without the process-wide AsyncLocalStorage that the main
// entry registers (on Node 20 that puts async hooks on every promise in the process). Nodes take
// what they need from their config argument, so nothing here relies on it.
import { Annotation, Command, END, START, StateGraph } from "@langchain/langgraph/web";

import type { GuardedConnector } from "../src/connectors/guarded.js";
import type { Dialect } from "../src/connectors/types.js";
import type { ModelCallCounts } from "../src/metrics.js";
import { contextBudget } from "./context-budget.js";
import type { HealthWarning } from "./health-text.js";
import { completeStep, isTextCall } from "./model-call.js";
import { NO_USAGE, type ChatModel, type TokenUsage } from "./model.js";
import { defaultPrompts, renderPrompt, type Prompts } from "./prompts.js";
import { skipUnreadRunTrees } from "./run-trees.js";
import { invalidArgumentsReply, MAX_TOOL_CALLS_PER_REPLY } from "./tool-arguments.js";
import { estimateTokens, schemaContext } from "./schema-context.js";
import type { SchemaIndex } from "./schema-index.js";
import {
  callSqlTool,
  createRecorder,
  SQL_TOOL_NAMES,
  toolDefinitions,
  type AgentEvent,
  type RecordedQuery,
  type ResultSet,
  type SqlToolName,
  type ToolContext,
  type ToolDefinition,
} from "./tools.js";

export type { AgentEvent, RecordedQuery, ResultSet } from "./tools.js";

export interface HistoryTurn {
  question: string;
  answer: string;
  sql: string[];
}

export interface RunAgentInput {
  question: string;
  history: HistoryTurn[];
  /** Informational: the prompt always names `connector.dialect`, the dialect SQL really runs on. */
  dialect: Dialect;
  connector: GuardedConnector;
  index: SchemaIndex;
  /** Model calls at most; when they run out the agent answers honestly without another call. */
  maxSteps: number;
  /** Rows of a result the model sees. */
  maxRowsToModel: number;
  /** Rows of the last result kept for the API response. */
  apiMaxRows: number;
  /** Schema text in the system prompt, in estimated tokens. */
  schemaTokenBudget: number;
  signal?: AbortSignal | undefined;
  onEvent?: ((event: AgentEvent) => void) | undefined;
  /** Resolves once whoever reads the events has taken enough of them: awaited before each
   * model and tool call, so that the agent does not run ahead of a slow client, its events
   * waiting in memory. */
  caughtUp?: (() => Promise<void>) | undefined;
  /** Defaults to the project's prompts/ (loaded once). */
  prompts?: Prompts | undefined;
  /** Sample values in describe_tables (one small guarded query per described table). */
  sampleValues?: boolean | undefined;
  /** Told of each model call: its tokens, or its failure (GET /metrics). */
  modelCalls?: ModelCallCounts | undefined;
  /** Open alerts on the tables a statement read: the model is warned of them with its rows. */
  healthOf?: ((sql: string) => Promise<HealthWarning[]>) | undefined;
  /** The API key the question came with, recorded with each statement in the audit trail. */
  apiKeyId?: number | null | undefined;
}

export interface AgentResult {
  answer: string;
  /** Every statement the model sent to run_query, in order, refused and failed ones included. */
  sql: string[];
  /** The same statements with their outcome. */
  queries: RecordedQuery[];
  /** The last successful result. */
  result: ResultSet | null;
  /** Summed over every model call, from the server's usage fields (estimated: counted locally
   * for at least one call whose server sent none). */
  usage: TokenUsage;
  /** Model calls made. */
  steps: number;
}

const AgentState = Annotation.Root({
  // Only ever appended to: no message ids to replace and no RemoveMessage, so MessagesAnnotation's
  // reducer (coercion, a uuid per message, an id lookup over the whole list each step) is unneeded.
  messages: Annotation<BaseMessage[]>({ reducer: (all, added) => all.concat(added), default: () => [] }),
  /** Model calls made so far. */
  steps: Annotation<number>({ reducer: (_, next) => next, default: () => 0 }),
});
type AgentStateT = typeof AgentState.State;

/** After the model: run its tool calls while steps remain, stop when it answered, give up
 * honestly (without another model call) when it still wants tools at the bound. */
export function routeAfterAgent(state: Pick<AgentStateT, "messages" | "steps">, maxSteps: number): "tools" | "give_up" | typeof END {
  const last = state.messages.at(-1);
  const wantsTools = last instanceof AIMessage && (last.tool_calls?.length ?? 0) > 0;
  if (!wantsTools) return END;
  return state.steps < maxSteps ? "tools" : "give_up";
}

const DIALECT_NAMES: Record<Dialect, { name: string; quote: string }> = {
  sqlite: { name: "SQLite", quote: '"double quotes"' },
  postgresql: { name: "PostgreSQL", quote: '"double quotes", case-sensitive when quoted' },
  mysql: { name: "MySQL/MariaDB", quote: "`backticks`" },
};

const SQL_IN_HISTORY_CHARS = 600;
/** What a turn keeps of its answer for the conversation: enough for the model to build on;
 * a model that answered megabytes must not make every later question of the thread carry them. */
const ANSWER_IN_HISTORY_CHARS = 8_000;
/** Statements a turn keeps (the latest). */
const SQL_IN_HISTORY_STATEMENTS = 20;

const cut = (text: string, chars: number) => (text.length > chars ? `${text.slice(0, chars)}…` : text);

/** A turn as the conversation keeps it: its answer and SQL cut to what later questions need. */
export function turnForHistory(question: string, answer: string, sql: string[]): HistoryTurn {
  return { question, answer: cut(answer, ANSWER_IN_HISTORY_CHARS), sql: sql.slice(-SQL_IN_HISTORY_STATEMENTS).map((s) => cut(s, SQL_IN_HISTORY_CHARS)) };
}

/** Earlier turns as they happened, the SQL folded into the answer so the model can reuse it;
 * the newest turns that fit in `maxTokens`. */
export function historyMessages(history: HistoryTurn[], maxTokens = Infinity): BaseMessage[] {
  const kept: BaseMessage[][] = [];
  let used = 0;
  for (const turn of [...history].reverse()) {
    const sql = turn.sql.map((s) => cut(s, SQL_IN_HISTORY_CHARS));
    const ran = sql.length > 0 ? `\n\n[SQL run for this answer]\n${sql.join(";\n")}` : "";
    const answer = `${turn.answer}${ran}`;
    used += estimateTokens(turn.question) + estimateTokens(answer);
    if (used > maxTokens) break;
    kept.unshift([new HumanMessage(turn.question), new AIMessage(answer)]);
  }
  return kept.flat();
}

export function systemPrompt(input: Pick<RunAgentInput, "question" | "dialect" | "index" | "maxSteps" | "maxRowsToModel" | "schemaTokenBudget">, prompts: Prompts): string {
  const context = schemaContext(input.index, input.question, { maxTokens: input.schemaTokenBudget });
  const dialect = DIALECT_NAMES[input.dialect];
  return renderPrompt(prompts.sqlAgent, {
    dialect: dialect.name,
    quote: dialect.quote,
    schema: context.text,
    schema_scope:
      context.omitted === 0
        ? "The schema below is complete."
        : `The schema below is partial: ${context.omitted} less relevant tables are not shown in full; use find_tables and describe_tables to look them up.`,
    max_rows: input.maxRowsToModel,
    max_steps: input.maxSteps,
  });
}

/** What one ask's nodes share, passed as `configurable.run` so the compiled graph is reused. */
interface AgentRun {
  model: ChatModel;
  textProtocol: string;
  offered: readonly SqlToolName[];
  tools: ToolDefinition[];
  toolContext: ToolContext;
  maxSteps: number;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  onEvent: ((event: AgentEvent) => void) | undefined;
  caughtUp: (() => Promise<void>) | undefined;
  usage: TokenUsage;
  modelCalls: ModelCallCounts | undefined;
  /** Whether the newest model reply reached onEvent token by token. */
  lastReplyStreamed: boolean;
  /** Whether the step bound ended the run. */
  gaveUp: boolean;
}

const runOf = (config: RunnableConfig): AgentRun => (config.configurable as { run: AgentRun }).run;

async function agent(state: AgentStateT, config: RunnableConfig): Promise<Command> {
  const run = runOf(config);
  await run.caughtUp?.();
  run.signal?.throwIfAborted();
  run.lastReplyStreamed = false;
  const onEvent = run.onEvent;
  const { message, usage } = await completeStep(run.model, state.messages, {
    tools: run.tools,
    offered: run.offered,
    textProtocol: run.textProtocol,
    timeoutMs: run.timeoutMs,
    signal: run.signal,
    onToken: onEvent
      ? (text) => {
          run.lastReplyStreamed = true;
          onEvent({ type: "answer_token", text });
        }
      : undefined,
  }).catch((err: unknown) => {
    run.modelCalls?.failed(err);
    throw err;
  });
  run.modelCalls?.called(usage);
  run.usage = addUsage(run.usage, usage);
  // Words streamed before a call ("Let me look that up", a ```sql block read as one) were not the
  // answer: the client is told to drop them, so what it shows ends as `answer` does.
  if (run.lastReplyStreamed && (message.tool_calls?.length ?? 0) > 0) {
    run.lastReplyStreamed = false;
    onEvent?.({ type: "answer_reset" });
  }
  const steps = state.steps + 1;
  const bounded = withBoundedToolCalls(message);
  // Routed by a Command rather than a conditional edge: the same decision without LangGraph's
  // branch runnables (two more Runnable rounds per model call).
  return new Command({ update: { messages: [bounded], steps }, goto: routeAfterAgent({ messages: [bounded], steps }, run.maxSteps) });
}

/** The reply with at most MAX_TOOL_CALLS_PER_REPLY calls, as if the model had asked no more:
 * a reply of thousands would run thousands of tools on the event loop and send them all back
 * in the next request. */
function withBoundedToolCalls(message: AIMessage): AIMessage {
  const calls = message.tool_calls ?? [];
  const invalid = message.invalid_tool_calls ?? [];
  if (calls.length + invalid.length <= MAX_TOOL_CALLS_PER_REPLY) return message;
  const { tool_calls: _raw, ...kwargs } = message.additional_kwargs;
  return new AIMessage({
    content: message.content,
    id: message.id,
    additional_kwargs: kwargs,
    response_metadata: message.response_metadata,
    usage_metadata: message.usage_metadata,
    tool_calls: calls.slice(0, MAX_TOOL_CALLS_PER_REPLY),
    invalid_tool_calls: invalid.slice(0, Math.max(0, MAX_TOOL_CALLS_PER_REPLY - calls.length)),
  });
}

async function runTools(state: AgentStateT, config: RunnableConfig): Promise<Partial<AgentStateT>> {
  const run = runOf(config);
  const last = state.messages.at(-1) as AIMessage;
  const results: ToolMessage[] = [];
  const unparsed = new Map((last.invalid_tool_calls ?? []).map((c) => [c.id, c]));
  // One at a time: they share one connector and its budgets.
  for (const call of last.tool_calls ?? []) {
    await run.caughtUp?.();
    run.signal?.throwIfAborted();
    // Arguments that are not one complete JSON object never reach a tool (see tool-arguments.ts).
    const invalid = unparsed.get(call.id);
    run.onEvent?.({ type: "tool_call", name: call.name, args: invalid ? invalid.args : call.args });
    const content = invalid ? invalidArgumentsReply(invalid, isTextCall(last)) : await callSqlTool(run.toolContext, run.offered, call.name, call.args);
    if (content.startsWith("ERROR:") && (invalid || call.name !== "run_query")) run.toolContext.recorder.lastError = content.slice(7);
    results.push(new ToolMessage({ content, tool_call_id: call.id ?? "", name: call.name }));
  }
  return { messages: results };
}

function giveUp(_state: AgentStateT, config: RunnableConfig): Partial<AgentStateT> {
  const run = runOf(config);
  run.gaveUp = true;
  const lastError = run.toolContext.recorder.lastError;
  const why = lastError ? `; the last error was: ${lastError}` : ".";
  return { messages: [new AIMessage(`I could not finish within ${run.maxSteps} steps${why}`)] };
}

const buildGraph = () =>
  new StateGraph(AgentState)
    .addNode("agent", agent, { ends: ["tools", "give_up", END] })
    .addNode("tools", runTools)
    .addNode("give_up", giveUp)
    .addEdge(START, "agent")
    .addEdge("tools", "agent")
    .addEdge("give_up", END)
    .compile();

let compiled: ReturnType<typeof buildGraph> | undefined;

/** The graph, compiled on first use (building and compiling it per ask cost ~0.1 ms). */
function agentGraph() {
  if (!compiled) {
    skipUnreadRunTrees();
    compiled = buildGraph();
  }
  return compiled;
}

export async function runAgent(model: ChatModel, input: RunAgentInput): Promise<AgentResult> {
  const maxSteps = Math.max(1, Math.floor(input.maxSteps));
  const recorder = createRecorder();
  // MODEL_CONTEXT_TOKENS: the schema, result rows and history shrink to fit the window.
  const budget = contextBudget(model.contextTokens, { schemaTokens: input.schemaTokenBudget, rowsToModel: input.maxRowsToModel }, model.maxTokens);
  // With the whole schema in the prompt, the lookup tools only cost tokens on every request
  // (~200 of tool definitions): offer run_query alone.
  const wholeSchemaShown = input.index.wholeTokens <= budget.schemaTokens;
  const offered: readonly SqlToolName[] = wholeSchemaShown ? ["run_query"] : SQL_TOOL_NAMES;
  const prompts = input.prompts ?? defaultPrompts();
  const run: AgentRun = {
    model,
    textProtocol: prompts.sqlAgentText,
    offered,
    tools: toolDefinitions(offered),
    toolContext: {
      connector: input.connector,
      index: input.index,
      recorder,
      maxRowsToModel: budget.rowsToModel,
      resultChars: budget.resultChars,
      apiMaxRows: input.apiMaxRows,
      sampleValues: input.sampleValues ?? true,
      onEvent: input.onEvent,
      signal: input.signal,
      healthOf: input.healthOf,
      apiKeyId: input.apiKeyId,
    },
    maxSteps,
    timeoutMs: model.timeout ?? 60_000,
    signal: input.signal,
    onEvent: input.onEvent,
    caughtUp: input.caughtUp,
    usage: NO_USAGE,
    modelCalls: input.modelCalls,
    lastReplyStreamed: false,
    gaveUp: false,
  };

  const system = systemPrompt(
    { ...input, dialect: input.connector.dialect, maxSteps, maxRowsToModel: budget.rowsToModel, schemaTokenBudget: budget.schemaTokens },
    prompts,
  );
  const messages = [new SystemMessage(system), ...historyMessages(input.history, budget.historyTokens), new HumanMessage(input.question)];
  // Each step is two graph super-steps (agent, tools), plus the give-up node.
  const final = await agentGraph().invoke({ messages }, { configurable: { run }, recursionLimit: 2 * maxSteps + 5, signal: input.signal });

  const last = final.messages.at(-1);
  let answer = last instanceof AIMessage ? last.text.trim() : "";
  if (!answer) answer = "The model gave no answer.";
  // The model's answer was streamed as it came; the give-up (or a stand-in) answer still reaches SSE clients.
  if (run.gaveUp || !run.lastReplyStreamed) input.onEvent?.({ type: "answer_token", text: answer });
  // An answer that ran into max_tokens ends mid-sentence: the reader is told it is not whole.
  if (last instanceof AIMessage && last.response_metadata?.finish_reason === "length") {
    const limit = model.maxTokens === undefined ? "its output limit" : `its limit of ${model.maxTokens} tokens a reply (OPENAI_MAX_TOKENS, at most a quarter of MODEL_CONTEXT_TOKENS)`;
    const note = `\n\n[The answer was cut off: the model reached ${limit}.]`;
    answer += note;
    input.onEvent?.({ type: "answer_token", text: note });
  }
  input.onEvent?.({ type: "done" });
  return {
    answer,
    sql: recorder.queries.map((q) => q.sql),
    queries: recorder.queries,
    result: recorder.lastResult,
    usage: run.usage,
    steps: final.steps,
  };
}

const addUsage = (a: TokenUsage, b: TokenUsage): TokenUsage => ({
  prompt_tokens: a.prompt_tokens + b.prompt_tokens,
  completion_tokens: a.completion_tokens + b.completion_tokens,
  total_tokens: a.total_tokens + b.total_tokens,
  estimated: a.estimated || b.estimated,
});
