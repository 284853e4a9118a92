// ask: the /ask agent on one database, when a model is configured (a tool error saying how to
// configure one otherwise). A new conversation per call unless `thread_id` continues one.

import { randomUUID } from "node:crypto";


import { requireScope } from "../../auth/grants.js";
import { counted } from "../../counted.js";
import type { Deps } from "../../deps.js";
import { ask } from "../../services/ask.js";
import { toolResult } from "../tool-results.js";
import type { ToolTable } from "../tool-table.js";
import { withHealth } from "../../../agents/health-text.js";
import { storableText } from "../../http/schemas.js";
import { rowId, toolInput } from "./inputs.js";

// Built once (every request builds its own server); ASK_MAX_QUESTION_CHARS is checked by ask().
const config = {
  description: "Answer a question about a database in plain language (Pulse's own read-only SQL agent). Returns the answer, the SQL it ran and a thread_id to continue.",
  inputSchema: toolInput({
    connection_id: rowId,
    question: storableText().min(1).max(100_000),
    thread_id: storableText().min(1).max(100).optional(),
  }),
  annotations: { readOnlyHint: true },
};

export function registerAskTool(tools: ToolTable, deps: Deps) {
  tools.register(
    "ask",
    config,
    async (args, caller, extra) => {
      requireScope(caller.grant, "ask", args.connection_id);
      const release = deps.askTurns.take(caller.userId);
      const answer = await ask(
        deps,
        { userId: caller.userId, sessionId: caller.sessionId, kind: caller.kind, grant: caller.grant },
        { question: args.question, connection_id: args.connection_id, thread_id: args.thread_id ?? `mcp-${randomUUID()}` },
        { signal: extra.signal },
      ).finally(release);
      const sql = answer.statements.map((s) => `${s.sql} -- ${s.outcome === "ok" ? counted(s.row_count, "row") : s.outcome}`).join("\n");
      const text = withHealth(`${answer.answer}${sql ? `\n\nSQL:\n${sql}` : ""}\n\nthread_id: ${answer.thread_id}`, answer.health);
      const { answer: answerText, sql: sent, statements, result, thread_id, usage, health } = answer;
      return toolResult(text, { answer: answerText, sql: sent, statements, result, thread_id, usage, health });
    },
  );
}
