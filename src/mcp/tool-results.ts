// What a tool answers: compact text for the model's context plus the same facts as structured
// content, and failures as MCP tool errors (`isError`), never transport failures, so a client
// shows the reason to its model. Unexpected errors answer a generic message with the request
// id, as the HTTP edge does: a driver's message never reaches a client.

import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

import { DomainError, invalidFields } from "../errors.js";
import { isStoreUnavailable, storeUnavailable } from "../store/unavailable.js";
import type { McpCaller } from "./caller.js";

export function toolResult(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: structured };
}

export function toolError(code: string, detail: string, extra: Record<string, unknown> = {}): CallToolResult {
  const rule = typeof extra.rule === "string" ? ` (${extra.rule})` : "";
  return { content: [{ type: "text", text: `${code}${rule}: ${detail}` }], structuredContent: { code, detail, ...extra }, isError: true };
}

/** What a client is told of a failure: a domain error's code and reason; for the store being
 * away or anything unexpected (logged here), a generic message, with the request id. `ours`:
 * the failure is Pulse's (the store, a bug), not something the caller asked wrong. */
export function failureOf(caller: McpCaller, err: unknown): { code: string; detail: string; extra: Record<string, unknown>; ours: boolean } {
  if (err instanceof DomainError) return asArguments(err) ?? { code: err.code, detail: err.message, extra: err.extra, ours: false };
  if (isStoreUnavailable(err)) {
    caller.logger.warn({ err }, "metadata store unavailable");
    const unavailable = storeUnavailable();
    return { code: unavailable.code, detail: unavailable.message, extra: {}, ours: true };
  }
  caller.logger.error({ err }, "unhandled error in an MCP tool or resource");
  return { code: "internal_error", detail: "Internal server error", extra: { request_id: caller.requestId }, ours: true };
}

/** An invalid input named as the HTTP API names it (`body.table`), named as the client sent it:
 * a tool's `arguments.table`. Undefined for any other error. */
function asArguments(err: DomainError): ReturnType<typeof failureOf> | undefined {
  const errors = err.extra.errors;
  if (err.code !== "invalid_input" || !Array.isArray(errors)) return undefined;
  const named = invalidFields((errors as { path: string; message: string }[]).map(({ path, message }) => ({ path: path.replace(/^body\./, "arguments."), message })));
  return { code: named.code, detail: named.message, extra: { ...err.extra, ...named.extra }, ours: false };
}

/** Runs a tool's body for `caller`, turning every failure into a tool error. */
export async function answering(caller: McpCaller, run: (caller: McpCaller) => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await run(caller);
  } catch (err) {
    const failure = failureOf(caller, err);
    return toolError(failure.code, failure.detail, failure.extra);
  }
}
