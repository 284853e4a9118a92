// POST /ask (seed 004): a plain-language question about the session's database. JSON by
// default; with `Accept: text/event-stream` the agent's steps stream as server-sent events.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { accepts } from "hono/accepts";
import { streamSSE } from "hono/streaming";

import type { AgentEvent } from "../../../agents/graph.js";
import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import { ask, type AskInput } from "../../services/ask.js";
import { requireScope, type Grant } from "../../auth/grants.js";
import type { AppEnv, AuthContext } from "../context.js";
import { requestedSession } from "../credential-rules.js";
import { errorBody, statusOf } from "../errors.js";
import { pacedEvents, type PacedEvents } from "../event-stream.js";
import { answeredWhenStreamEnds } from "../request-edge.js";
import { requestLogger } from "../request-log.js";
import { authErrors, errorResponse, HealthSchema, jsonBody, RowId } from "../schemas.js";
import { followStops, watchStanding, whileStanding } from "../standing.js";

const AskBody = z
  .object({
    question: z.string().min(1).max(100_000).openapi({ example: "Show me all users who placed orders in the last 30 days" }),
    session_id: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: "Session whose database to ask (default: the token's session, the one `/login` opened)" }),
    user_id: RowId.optional().openapi({ description: "Seed 004's field; the token already says who asks. If sent, must be the authenticated user (403 otherwise)" }),
    thread_id: z.string().min(1).max(100).optional().openapi({ description: "Conversation to continue (default: the session id)" }),
  })
  .openapi("AskRequest");

const Cell = z.union([z.string(), z.number(), z.boolean(), z.null(), z.object({ $binary: z.string() })]);
const AskResponse = z
  .object({
    answer: z.string(),
    sql: z.array(z.string()).openapi({
      description: "Every statement the model sent, in order, including those the guard refused; what became of each is in `statements`",
    }),
    statements: z
      .array(
        z.object({
          sql: z.string(),
          outcome: z.enum(["ok", "refused", "error"]).openapi({
            description: "`ok`: ran; `refused`: the read-only guard stopped it, nothing reached the database; `error`: the database failed it",
          }),
          row_count: z.number().int().optional().openapi({ description: "Rows returned (`ok`)" }),
          rule: z.string().optional().openapi({ description: "The guard's rule that refused it (`refused`)" }),
          code: z.string().optional().openapi({ description: "sql_failed, query_timeout or result_too_large (`error`)" }),
          error: z.string().optional().openapi({ description: "Why, as the model was told (`refused`, `error`)" }),
        }),
      )
      .openapi({ description: "The statements of `sql`, in the same order, each with its outcome" }),
    result: z
      .object({ columns: z.array(z.string()), rows: z.array(z.array(Cell)), row_count: z.number().int(), truncated: z.boolean() })
      .nullable(),
    thread_id: z.string(),
    session_id: z.string(),
    usage: z.object({
      prompt_tokens: z.number().int(),
      completion_tokens: z.number().int(),
      total_tokens: z.number().int(),
      estimated: z.boolean().openapi({ description: "true: the model server reported no usage for some call, so Pulse counted its tokens locally (o200k_base): an estimate" }),
    }),
    steps: z.number().int(),
    elapsed_ms: z.number(),
    health: HealthSchema,
  })
  .openapi("AskResponse", {
    example: {
      answer: "Brazil has 13 customers.",
      sql: ["SELECT count(*) AS customers FROM customer WHERE country = 'Brazil'"],
      statements: [{ sql: "SELECT count(*) AS customers FROM customer WHERE country = 'Brazil'", outcome: "ok", row_count: 1 }],
      result: { columns: ["customers"], rows: [[13]], row_count: 1, truncated: false },
      thread_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10",
      session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10",
      usage: { prompt_tokens: 1840, completion_tokens: 64, total_tokens: 1904, estimated: false },
      health: [],
      steps: 3,
      elapsed_ms: 2140.5,
    },
  });

const route = createRoute({
  method: "post",
  path: "/ask",
  tags: ["Ask"],
  summary: "Ask a question in plain language; answered read-only by the SQL agent",
  description:
    "Send `Accept: text/event-stream` to receive tool_call, sql, rows, sql_error, answer_token (answer_reset: drop the answer tokens so far, which were the model's words before a tool call), result and done events. The stream starts with the first event: a failure before it answers its status as JSON, a failure after it is an `error` event (with `status`) before `done`.",
  request: { body: jsonBody(AskBody) },
  responses: {
    200: {
      content: {
        "application/json": { schema: AskResponse },
        "text/event-stream": {
          schema: z.string(),
          example:
            'event: sql\ndata: {"type":"sql","sql":"SELECT count(*) AS customers FROM customer WHERE country = \'Brazil\'"}\n\n' +
            'event: rows\ndata: {"type":"rows","columns":["customers"],"rows":[[13]],"row_count":1,"truncated":false}\n\n' +
            'event: answer_token\ndata: {"type":"answer_token","text":"Brazil has 13 customers."}\n\n' +
            'event: result\ndata: {"answer":"Brazil has 13 customers.", …}\n\n' +
            "event: done\ndata: {}\n\n",
        },
      },
      description: "The answer, the SQL it ran and the last result",
    },
    403: errorResponse("user_id is not the authenticated user; or sent with an API key that lacks the 'ask' scope, or naming a session other than its own"),
    404: errorResponse("Session ID does not belong to the authenticated user or session not found"),
    409: errorResponse("No database connected for this session"),
    429: errorResponse("Too many questions, or the user's model tokens for the hour (ASK_TOKENS_PER_HOUR) are spent; see Retry-After"),
    502: errorResponse("The model server failed or answered nonsense"),
    503: errorResponse("No model configured (model_not_configured), the model server asks to wait (model_rate_limited; see Retry-After), or a service Pulse depends on is away (sessions_unavailable, store_unavailable, audit_unavailable)"),
    504: errorResponse("The model or the whole question took too long"),
    ...authErrors,
  },
});

export function mountAsk(app: OpenAPIHono<AppEnv>, deps: Deps) {
  app.openapi(route, async (c) => {
    const input = c.req.valid("json");
    const auth = { ...c.get("auth"), grant: c.get("grant") };
    // The session's connection: a key's own session is only ever connected to a connection it
    // may reach (see sessions.ts).
    requireScope(c.get("grant"), "ask");
    requestedSession(auth, input.session_id);
    const release = deps.askTurns.take(auth.userId);
    if (wantsEventStream(c)) return (await askStream(c, deps, auth, input, release)) as never;
    try {
      return c.json(await whileStanding(c, deps, (signal) => ask(deps, auth, input, { signal })), 200);
    } catch (err) {
      logModelFailure(c, err);
      throw err;
    } finally {
      release();
    }
  });
}

const EVENT_STREAM = "text/event-stream";
const JSON_TYPE = "application/json";

/** Whether Accept asks for the steps as server-sent events: text/event-stream named (in any
 * case) at a q above 0 and at least JSON's (application/json, else application/*, else *\/*).
 * No Accept or *\/* alone answers JSON; a tie (`application/json, text/event-stream`) streams,
 * as naming the stream always did. */
const wantsEventStream = (c: Context<AppEnv>) =>
  accepts(c, { header: "Accept", supports: [EVENT_STREAM, JSON_TYPE], default: JSON_TYPE, match: streamOrJson }) === EVENT_STREAM;

/** Accept's entries as hono parses them: type, params and q, the highest q first. */
type AcceptEntries = Parameters<NonNullable<Parameters<typeof accepts>[1]["match"]>>[0];

function streamOrJson(entries: AcceptEntries): string {
  const q = (type: string) => entries.find((e) => e.type.toLowerCase() === type)?.q;
  const stream = q(EVENT_STREAM) ?? 0;
  return stream > 0 && stream >= (q(JSON_TYPE) ?? q("application/*") ?? q("*/*") ?? 0) ? EVENT_STREAM : JSON_TYPE;
}

/** One structured line per failed model call, with the server and the cause: the response says
 * it to the user, this says it to whoever runs Pulse. */
function logModelFailure(c: Context<AppEnv>, err: unknown) {
  if (!(err instanceof DomainError) || (err.code !== "model_failed" && err.code !== "model_timeout")) return;
  requestLogger(c).warn({ code: err.code, ...err.extra, detail: err.message }, "model server failed");
}

/**
 * The SSE answer. Nothing is sent before the agent's first event, so a failure before it (a
 * dead model server, no model, a foreign session) answers its real status as JSON; after the
 * first byte, a failure is an `error` event with the same detail and status, then `done`.
 */
async function askStream(c: Context<AppEnv>, deps: Deps, auth: AuthContext & { grant: Grant }, input: AskInput, release: () => void) {
  const abort = new AbortController();
  // Stopped as whileStanding stops the other requests: by the client hanging up, or by the
  // instance shutting down (the stream then ends with the 503 shutting_down error event rather
  // than being cut by the drain). The agent's work outlives this handler: followed, and
  // watched, until the answer settles.
  const unfollow = followStops(c, deps, abort);
  const unwatchStanding = await watchStanding(c, deps, abort).catch((err: unknown) => {
    unfollow();
    release();
    throw err;
  });
  const unwatch = () => {
    unwatchStanding();
    unfollow();
  };
  const early: AgentEvent[] = [];
  let forward: ((event: AgentEvent) => void) | undefined;
  let events: PacedEvents | undefined;
  let started!: () => void;
  const firstEvent = new Promise<void>((resolve) => (started = resolve));
  const answer = ask(deps, auth, input, {
    signal: abort.signal,
    caughtUp: () => events?.caughtUp() ?? Promise.resolve(),
    onEvent: (e) => {
      if (e.type === "done") return;
      if (forward) return forward(e);
      early.push(e);
      started();
    },
  });
  void answer.then(unwatch, unwatch);
  // Whichever comes first: the first event, or the end (a failure is read just below).
  await Promise.race([answer.catch(() => undefined), firstEvent]);
  if (early.length === 0) {
    try {
      await answer;
    } catch (err) {
      release();
      logModelFailure(c, err);
      throw err;
    }
  }
  answeredWhenStreamEnds(c);
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => {
      abort.abort();
      release();
    });
    // Writes in order, whoever sends: the agent's events, then the result or the error; a
    // client that stops taking them is let go (event-stream.ts), which aborts the stream.
    const limits = { sendTimeoutMs: deps.config.sendTimeoutMs, maxBehindChars: deps.config.query.maxBytes };
    const paced = pacedEvents(c, stream, limits, (reason) => requestLogger(c).warn(reason));
    let settled = false;
    try {
      // The agent waits for the client from here on (before, its first events wait in `early`).
      events = paced;
      const send = (event: string, data: unknown) => paced.send(event, data);
      for (const e of early.splice(0)) void send(e.type, e);
      forward = (e) => void send(e.type, e);
      try {
        void send("result", await answer);
      } catch (err) {
        const known = err instanceof DomainError;
        if (known) logModelFailure(c, err);
        else requestLogger(c).error({ err }, "ask stream failed");
        void send(
          "error",
          known
            ? { ...errorBody(err.code, err.message, err.extra), status: statusOf(err.code) }
            : errorBody("internal_error", "Internal server error", { request_id: c.get("requestId"), status: 500 }),
        );
      }
      settled = true;
      await send("done", {});
    } finally {
      // A stream that failed before the answer: the agent stops too.
      if (!settled) abort.abort();
      paced.close();
      // Written, given up with the client, or failed here: however the stream ends, the question
      // no longer holds its turn (a turn kept by a throw was the user's for the process's life).
      release();
    }
  });
}
