// POST /ask: a plain-language question answered by the SQL agent on the session's database,
// with conversation memory per thread in the session store (shared by all instances).

import { runAgent, turnForHistory, type AgentEvent, type AgentResult, type HistoryTurn, type RecordedQuery } from "../../agents/graph.js";
import { modelServerOf } from "../../agents/model.js";
import type { Grant } from "../auth/grants.js";
import { throwIfCancelled } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { DomainError, RateLimitedError } from "../errors.js";
import type { Owner } from "../sessions/types.js";
import { connectedDb, sessionOf, workingConnector } from "./database-access.js";
import type { ModelCallCounts } from "../metrics.js";
import { counted } from "../counted.js";
import { countTry } from "../rate-limits.js";
import { schemaIndexOf } from "./schema-context.js";
import { alertsOnTablesRead, type TableAlert } from "./table-health.js";

export interface AskInput {
  question: string;
  /** Default: the token's session. */
  session_id?: string | undefined;
  /** Seed 004's field: redundant with the token, checked when sent. */
  user_id?: number | undefined;
  thread_id?: string | undefined;
  /** Ask about this connection of the user's instead of the session's (MCP names one per call). */
  connection_id?: number | undefined;
}

/** One statement the model sent and what became of it: run, refused by the guard (nothing
 * reached the database), or failed at the database (timeout, error, result too large). */
export type AskStatement =
  | { sql: string; outcome: "ok"; row_count: number }
  | { sql: string; outcome: "refused"; rule: string; error: string }
  | { sql: string; outcome: "error"; code: string; error: string };

const statementOf = (q: RecordedQuery): AskStatement => {
  if (q.ok) return { sql: q.sql, outcome: "ok", row_count: q.row_count ?? 0 };
  if (q.code === "sql_refused") return { sql: q.sql, outcome: "refused", rule: q.rule ?? "", error: q.error ?? "" };
  return { sql: q.sql, outcome: "error", code: q.code ?? "sql_failed", error: q.error ?? "" };
};

export interface AskAnswer {
  answer: string;
  /** Every statement the model sent, in order, refused ones included. */
  sql: string[];
  statements: AskStatement[];
  result: AgentResult["result"];
  thread_id: string;
  session_id: string;
  usage: AgentResult["usage"];
  steps: number;
  elapsed_ms: number;
  /** Open monitoring alerts on the tables the statements that ran read. */
  health: TableAlert[];
}

/** A turn as kept in the session store: with the connection it was asked on and the database
 * that connection then reached (its connector's targetKey: no credentials). Turns saved before
 * either was kept lack it, and count for every connection and database. */
type StoredTurn = HistoryTurn & { connection_id?: number; target?: string };

/** An API key's conversations are kept apart from its user's logins': their history (fed to the
 * model) may hold answers from connections the key may not reach. Apart by a prefix of their
 * own: under the login's, a login naming thread_id "key:7:t1" read and continued key 7's t1. */
const historyKey = (auth: { userId: number; sessionId: string; kind?: "login" | "key" }, threadId: string) =>
  auth.kind === "key" ? `key-thread:${auth.userId}:${auth.sessionId}:${threadId}` : `thread:${auth.userId}:${threadId}`;

/** Whom a conversation is deleted with: its user, and an API key's also with the key (revoked). */
const historyOwner = (auth: { userId: number; sessionId: string; kind?: "login" | "key" }): Owner =>
  auth.kind === "key" ? { userId: auth.userId, sessionId: auth.sessionId } : { userId: auth.userId };

/** Model tokens (prompt and completion) of a user's questions, counted per hour on every instance. */
const tokensKey = (userId: number) => `ask:tokens:user:${userId}`;
const TOKEN_WINDOW_SECONDS = 3600;

const valueOf = <T>(outcome: PromiseSettledResult<T>): T => {
  if (outcome.status === "rejected") throw outcome.reason;
  return outcome.value;
};

export async function ask(
  deps: Deps,
  /** `kind: "key"`: an API key, whose conversations are its own (see historyKey). */
  auth: { userId: number; sessionId: string; kind?: "login" | "key"; grant: Grant },
  input: AskInput,
  /** `caughtUp`: see AgentRunInput (an event stream's client). */
  options: { onEvent?: (event: AgentEvent) => void; caughtUp?: () => Promise<void>; signal?: AbortSignal } = {},
): Promise<AskAnswer> {
  const started = performance.now();
  // Who may ask before whether Pulse can answer: a request naming another user is refused as such.
  if (input.user_id !== undefined && input.user_id !== auth.userId) throw new DomainError("forbidden", "user_id does not match the authenticated user");
  // And a question that could never be asked is told so (422) before whether Pulse can answer.
  const { maxQuestionChars, perMinute, tokensPerHour, maxTurns, conversationTtlSeconds, timeoutMs, maxNewConversations } = deps.config.ask;
  const blank = input.question.trim().length === 0;
  if (blank || input.question.length > maxQuestionChars) {
    const message = blank ? "must not be blank (only spaces)" : `must be 1 to ${maxQuestionChars} characters`;
    throw new DomainError("invalid_input", `Invalid input: body.question: ${message}`, { errors: [{ path: "body.question", message }] });
  }
  const sessionId = input.session_id ?? auth.sessionId;
  const threadId = input.thread_id ?? sessionId;
  const key = historyKey(auth, threadId);
  // Four independent reads of the session store at once: one round trip to Redis instead of
  // four. Their outcomes are checked in order, so a rate limit still wins over a bad session.
  const [rate, tokens, sessionRead, items] = await Promise.allSettled([
    deps.sessions.hit(`ask:user:${auth.userId}`, 60),
    deps.sessions.hit(tokensKey(auth.userId), TOKEN_WINDOW_SECONDS, 0),
    input.connection_id === undefined ? sessionOf(deps, auth.userId, sessionId, auth.sessionId) : null,
    deps.sessions.listItems(key),
  ]);
  const { count, resetsInSeconds } = valueOf(rate);
  if (count > perMinute) throw new RateLimitedError(`At most ${counted(perMinute, "question")} per minute; try again shortly`, resetsInSeconds);
  // Checked before a question, counted after: a question under way finishes, however far it
  // takes the user past the hour's tokens (its own bounds: AGENT_MAX_STEPS, OPENAI_MAX_TOKENS).
  const spentThisHour = valueOf(tokens);
  if (spentThisHour.count >= tokensPerHour) {
    throw new RateLimitedError(`At most ${counted(tokensPerHour, "model token")} per user per hour (ASK_TOKENS_PER_HOUR); try again later`, spentThisHour.resetsInSeconds);
  }
  // A session that is not the caller's (404, as seed 004 checks it first), or has no database,
  // is told so before whether Pulse can answer at all.
  const session = valueOf(sessionRead);
  const connectionId = session ? connectedDb(session) : input.connection_id!;
  if (!deps.model) {
    throw new DomainError(
      "model_not_configured",
      "No language model is configured: set OPENAI_BASE_URL (any OpenAI-compatible server) and/or OPENAI_API_KEY (OPENAI_MODEL names the model, gpt-4o-mini unless set), then restart",
    );
  }
  const startsConversation = valueOf(items).length === 0;
  if (startsConversation) {
    // A new conversation: a Redis list kept CONVERSATION_TTL_SECONDS. Each is bounded by
    // CONVERSATION_MAX_TURNS, and how many one user starts by this.
    await countTry(
      deps,
      `ask:conversations:user:${auth.userId}`,
      { max: maxNewConversations, windowSeconds: conversationTtlSeconds },
      `At most ${counted(maxNewConversations, "new conversation")} per user in ${conversationTtlSeconds} s (CONVERSATION_MAX_NEW_PER_USER); continue one by its thread_id`,
    );
  }

  const connector = await workingConnector(deps, auth.userId, connectionId, Boolean(session));
  const index = await schemaIndexOf(await connector.schema());
  // Only the turns on this connection and the database it reaches now: after connect_db to
  // another connection, or a PUT moving this one to another database, the same thread goes on,
  // and its earlier answers (and their SQL, and their rows) are about tables this one may not have.
  const history = valueOf(items)
    .map((item) => JSON.parse(item) as StoredTurn)
    .filter((turn) => (turn.connection_id ?? connectionId) === connectionId && (turn.target ?? connector.targetKey) === connector.targetKey);

  const deadline = AbortSignal.timeout(timeoutMs);
  // Aborted once the run is over: LangGraph adds an abort listener to `signal` it never removes,
  // and Node keeps a composite signal with listeners (gcPersistentSignals) until it aborts.
  const finished = new AbortController();
  const signal = AbortSignal.any([...(options.signal ? [options.signal] : []), deadline, finished.signal]);
  // Each model call's tokens, as the metrics hear of them, so that a question that fails or whose
  // client hangs up after some calls counts them too: the model server billed them all the same.
  let spent = 0;
  const modelCalls: ModelCallCounts = {
    called: (usage) => {
      spent += usage.prompt_tokens + usage.completion_tokens;
      deps.metrics.model.called(usage);
    },
    failed: (err) => deps.metrics.model.failed(err),
  };
  const countSpent = () => (spent > 0 ? deps.sessions.hit(tokensKey(auth.userId), TOKEN_WINDOW_SECONDS, spent) : undefined);
  let outcome: AgentResult;
  try {
    outcome = await runAgent(deps.model, {
      question: input.question,
      history,
      dialect: connector.dialect,
      connector,
      index,
      maxSteps: deps.config.agent.maxSteps,
      maxRowsToModel: deps.config.agent.rowsToModel,
      apiMaxRows: deps.config.query.maxRows,
      schemaTokenBudget: deps.config.agent.schemaTokens,
      signal,
      onEvent: options.onEvent,
      caughtUp: options.caughtUp,
      prompts: deps.prompts,
      modelCalls,
      healthOf: (sql) => alertsOnTablesRead(deps, auth.userId, auth.grant, connector, [sql]),
      apiKeyId: auth.grant.apiKeyId,
    });
  } catch (err) {
    // What the caller hears of is the question's own failure, not a Redis that cannot count.
    await countSpent()?.catch(() => undefined);
    if (deadline.aborted) {
      // Most of a question's time is the model's: name the server, as its own timeouts do.
      const server = modelServerOf(deps.model).url;
      throw new DomainError("model_timeout", `The question took longer than ${Math.round(timeoutMs / 1000)} s to answer (ASK_TIMEOUT_MS), waiting on the model server at ${server} and the queries it asked for`, {
        timeout_ms: timeoutMs,
        model_server: server,
      });
    }
    // The client hung up: whatever the model call or statement then threw (an abort, or the
    // HTTP client's own error), it is the client's leaving, answered and logged as /query's.
    throwIfCancelled(options.signal);
    throw err;
  } finally {
    finished.abort();
  }

  const turn: StoredTurn = { ...turnForHistory(input.question, outcome.answer, outcome.sql), connection_id: connectionId, target: connector.targetKey };
  // Kept CONVERSATION_TTL_SECONDS from its first turn, not its last: a conversation continued
  // for ever would outlive the count of new ones per TTL, which bounds what a user keeps. For
  // the same reason a conversation that expired while this question ran is not made again
  // (uncounted): the answer stands, and the thread's next question starts a new one.
  // The turn and the tokens spent, in one round trip to the session store.
  await Promise.all([
    deps.sessions.pushBounded(key, JSON.stringify(turn), maxTurns, conversationTtlSeconds, startsConversation ? "from-first" : "while-kept", historyOwner(auth)),
    countSpent(),
  ]);
  const ran = outcome.queries.filter((q) => q.ok).map((q) => q.sql);
  const health = await alertsOnTablesRead(deps, auth.userId, auth.grant, connector, ran);
  return {
    answer: outcome.answer,
    sql: outcome.sql,
    statements: outcome.queries.map(statementOf),
    result: outcome.result,
    thread_id: threadId,
    session_id: sessionId,
    usage: outcome.usage,
    steps: outcome.steps,
    elapsed_ms: Math.round(performance.now() - started),
    health,
  };
}
