// POST /ask (seed 004): a plain-language question about the session's database. JSON by
// default; with `Accept: text/event-stream` the agent's steps stream as server-sent events.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";

import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import { ask } from "../../services/ask.js";
import { requireAuth } from "../auth.js";
import type { AppEnv } from "../context.js";
import { errorBody, statusOf } from "../errors.js";
import { requestLogger } from "../request-log.js";
import { authErrors, errorResponse, jsonBody } from "../schemas.js";

const AskBody = z
  .object({
    question: z.string().min(1).max(100_000).openapi({ example: "Show me all users who placed orders in the last 30 days" }),
    session_id: z.string().min(1).max(100),
    user_id: z.number().int().positive().openapi({ description: "Must be the authenticated user" }),
    thread_id: z.string().min(1).max(100).optional().openapi({ description: "Conversation to continue (default: the session id)" }),
  })
  .openapi("AskRequest");

const Cell = z.union([z.string(), z.number(), z.boolean(), z.null(), z.object({ $binary: z.string() })]);
const AskResponse = z
  .object({
    answer: z.string(),
    sql: z.array(z.string()).openapi({ description: "Every statement the agent ran, in order" }),
    result: z
      .object({ columns: z.array(z.string()), rows: z.array(z.array(Cell)), row_count: z.number().int(), truncated: z.boolean() })
      .nullable(),
    thread_id: z.string(),
    session_id: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
    steps: z.number().int(),
    elapsed_ms: z.number(),
  })
  .openapi("AskResponse");

const route = createRoute({
  method: "post",
  path: "/ask",
  tags: ["Ask"],
  security: [{ bearer: [] }],
  summary: "Ask a question in plain language; answered read-only by the SQL agent",
  description: "Send `Accept: text/event-stream` to receive tool_call, sql, rows, sql_error, answer_token, result and done events.",
  request: { body: jsonBody(AskBody) },
  responses: {
    200: {
      content: { "application/json": { schema: AskResponse }, "text/event-stream": { schema: z.string() } },
      description: "The answer, the SQL it ran and the last result",
    },
    403: errorResponse("user_id is not the authenticated user"),
    404: errorResponse("Session ID does not belong to the authenticated user or session not found"),
    409: errorResponse("No database connected for this session"),
    429: errorResponse("Too many questions; see Retry-After"),
    502: errorResponse("The model server failed or answered nonsense"),
    503: errorResponse("No model configured"),
    504: errorResponse("The model or the whole question took too long"),
    ...authErrors,
  },
});

export function mountAsk(app: OpenAPIHono<AppEnv>, deps: Deps) {
  app.use(route.getRoutingPath(), requireAuth(deps));
  app.openapi(route, async (c) => {
    const input = c.req.valid("json");
    const auth = c.get("auth");
    if (!(c.req.header("accept") ?? "").includes("text/event-stream")) {
      return c.json(await ask(deps, auth, input, { signal: c.req.raw.signal }), 200);
    }
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const send = (event: string, data: unknown) => stream.writeSSE({ event, data: JSON.stringify(data) });
      try {
        const answer = await ask(deps, auth, input, {
          signal: abort.signal,
          onEvent: (e) => void (e.type === "done" ? undefined : send(e.type, e)),
        });
        await send("result", answer);
      } catch (err) {
        const known = err instanceof DomainError;
        if (!known) requestLogger(c).error({ err }, "ask stream failed");
        await send(
          "error",
          known
            ? { ...errorBody(err.code, err.message, err.extra), status: statusOf(err.code) }
            : errorBody("internal_error", "Internal server error", { request_id: c.get("requestId"), status: 500 }),
        );
      }
      await send("done", {});
    }) as never;
  });
}
