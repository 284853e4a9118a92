// The SQL agent: a hand-built LangGraph loop (agent -> tools -> agent) with a hard step bound.
// Nodes are plain async functions, routing is a pure function; the guard, not the prompt, keeps data safe.

import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type BaseMessage } from "@langchain/core/messages";
import { ToolInputParsingException } from "@langchain/core/tools";
import { Annotation, END, MessagesAnnotation, START, StateGraph } from "@langchain/langgraph";
import type { ChatOpenAI } from "@langchain/openai";

import type { GuardedConnector } from "../src/connectors/guarded.js";
import type { Dialect } from "../src/connectors/types.js";
import { NO_USAGE, streamCompletion, type TokenUsage } from "./model.js";
import { defaultPrompts, renderPrompt, type Prompts } from "./prompts.js";
import { schemaContext } from "./schema-context.js";
import type { SchemaIndex } from "./schema-index.js";
import { createRecorder, createSqlTools, type AgentEvent, type RecordedQuery, type ResultSet } from "./tools.js";

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
  /** Defaults to the project's prompts/ (loaded once). */
  prompts?: Prompts | undefined;
  /** Sample values in describe_tables (one small guarded query per described table). */
  sampleValues?: boolean | undefined;
}

export interface AgentResult {
  answer: string;
  /** Every statement the model sent to run_query, in order, refused and failed ones included. */
  sql: string[];
  /** The same statements with their outcome. */
  queries: RecordedQuery[];
  /** The last successful result. */
  result: ResultSet | null;
  /** Summed over every model call, from the server's usage fields. */
  usage: TokenUsage;
  /** Model calls made. */
  steps: number;
}

const AgentState = Annotation.Root({
  ...MessagesAnnotation.spec,
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

/** Earlier turns as they happened, the SQL folded into the answer so the model can reuse it. */
export function historyMessages(history: HistoryTurn[]): BaseMessage[] {
  return history.flatMap((turn) => {
    const sql = turn.sql.map((s) => (s.length > SQL_IN_HISTORY_CHARS ? `${s.slice(0, SQL_IN_HISTORY_CHARS)}…` : s));
    const ran = sql.length > 0 ? `\n\n[SQL run for this answer]\n${sql.join(";\n")}` : "";
    return [new HumanMessage(turn.question), new AIMessage(`${turn.answer}${ran}`)];
  });
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

export async function runAgent(model: ChatOpenAI, input: RunAgentInput): Promise<AgentResult> {
  const maxSteps = Math.max(1, Math.floor(input.maxSteps));
  const emit = (event: AgentEvent) => input.onEvent?.(event);
  const recorder = createRecorder();
  const tools = createSqlTools({
    connector: input.connector,
    index: input.index,
    recorder,
    maxRowsToModel: input.maxRowsToModel,
    apiMaxRows: input.apiMaxRows,
    sampleValues: input.sampleValues ?? true,
    onEvent: input.onEvent,
  });
  // With the whole schema in the prompt, the lookup tools only cost tokens on every request
  // (~200 of tool definitions): offer run_query alone.
  const wholeSchemaShown = input.index.wholeTokens <= input.schemaTokenBudget;
  const offered = wholeSchemaShown ? tools.filter((t) => t.name === "run_query") : tools;
  const toolsByName = new Map<string, (typeof tools)[number]>(offered.map((t) => [t.name, t]));
  const bound = model.bindTools(offered);
  const timeoutMs = model.timeout ?? 60_000;
  let usage: TokenUsage = NO_USAGE;
  // Whether the newest model reply reached onEvent token by token, and whether the step bound ended the run.
  let lastReplyStreamed = false;
  let gaveUp = false;

  async function agent(state: AgentStateT): Promise<Partial<AgentStateT>> {
    lastReplyStreamed = false;
    const { message, usage: used } = await streamCompletion(bound, state.messages, {
      timeoutMs,
      signal: input.signal,
      onToken: (text) => {
        lastReplyStreamed = true;
        emit({ type: "answer_token", text });
      },
    });
    usage = addUsage(usage, used);
    return { messages: [message], steps: state.steps + 1 };
  }

  async function runTools(state: AgentStateT): Promise<Partial<AgentStateT>> {
    const last = state.messages.at(-1) as AIMessage;
    const results: ToolMessage[] = [];
    // One at a time: they share one connector and its per-connection budget.
    for (const call of last.tool_calls ?? []) {
      input.signal?.throwIfAborted();
      emit({ type: "tool_call", name: call.name, args: call.args });
      const content = await invokeTool(toolsByName.get(call.name), call.name, call.args);
      if (content.startsWith("ERROR:") && call.name !== "run_query") recorder.lastError = content.slice(7);
      results.push(new ToolMessage({ content, tool_call_id: call.id ?? "", name: call.name }));
    }
    return { messages: results };
  }

  function giveUp(): Partial<AgentStateT> {
    gaveUp = true;
    const why = recorder.lastError ? `; the last error was: ${recorder.lastError}` : ".";
    return { messages: [new AIMessage(`I could not finish within ${maxSteps} steps${why}`)] };
  }

  async function invokeTool(target: (typeof tools)[number] | undefined, name: string, args: unknown): Promise<string> {
    if (!target) return `ERROR: there is no tool named "${name}"; use ${[...toolsByName.keys()].join(", ")}`;
    try {
      return String(await (target as { invoke(a: unknown): Promise<unknown> }).invoke(args));
    } catch (err) {
      if (err instanceof ToolInputParsingException) return `ERROR: invalid arguments for ${name}: ${err.message}`;
      throw err;
    }
  }

  const graph = new StateGraph(AgentState)
    .addNode("agent", agent)
    .addNode("tools", runTools)
    .addNode("give_up", giveUp)
    .addEdge(START, "agent")
    .addConditionalEdges("agent", (state) => routeAfterAgent(state, maxSteps), ["tools", "give_up", END])
    .addEdge("tools", "agent")
    .addEdge("give_up", END)
    .compile();

  const prompts = input.prompts ?? defaultPrompts();
  const system = systemPrompt({ ...input, dialect: input.connector.dialect, maxSteps }, prompts);
  const messages = [new SystemMessage(system), ...historyMessages(input.history), new HumanMessage(input.question)];
  // Each step is two graph super-steps (agent, tools), plus the give-up node.
  const final = await graph.invoke({ messages }, { recursionLimit: 2 * maxSteps + 5, signal: input.signal });

  const last = final.messages.at(-1);
  let answer = last instanceof AIMessage ? last.text.trim() : "";
  if (!answer) answer = "The model gave no answer.";
  // The model's answer was streamed as it came; the give-up (or a stand-in) answer still reaches SSE clients.
  if (gaveUp || !lastReplyStreamed) emit({ type: "answer_token", text: answer });
  emit({ type: "done" });
  return {
    answer,
    sql: recorder.queries.map((q) => q.sql),
    queries: recorder.queries,
    result: recorder.lastResult,
    usage,
    steps: final.steps,
  };
}

const addUsage = (a: TokenUsage, b: TokenUsage): TokenUsage => ({
  prompt_tokens: a.prompt_tokens + b.prompt_tokens,
  completion_tokens: a.completion_tokens + b.completion_tokens,
  total_tokens: a.total_tokens + b.total_tokens,
});
