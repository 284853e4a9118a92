// A streamed reply put together as its chunks arrive. LangChain's AIMessageChunk.concat, chunk by
// chunk, copies every tool call so far, and its constructor parses all their arguments again: a
// model server streaming 20,000 tool calls, one a chunk, held the event loop 93 s (no timer runs
// meanwhile: the chunks were already read). Here tool calls are matched as LangChain matches
// them (by index, or by id without one), their argument text kept in parts, and one
// AIMessageChunk is made at the end. But LangChain's stream() merges every chunk that way too,
// for its callbacks, so the reply is also bounded: a call past MAX_TOOL_CALLS_PER_REPLY ends
// the reading (as if the model had asked no more: the graph runs no more than that anyway), and
// a call's arguments past MAX_TOOL_ARGUMENT_CHARS, or more than MAX_TOOL_CALL_CHUNKS chunks of
// calls, fail the reply (each such chunk costs LangChain a parse of the arguments so far).

import { AIMessageChunk, mergeResponseMetadata, mergeUsageMetadata, type UsageMetadata } from "@langchain/core/messages";

import { ModelServerFailure } from "./model-fetch.js";
import { checkArgumentsLength, MAX_TOOL_CALLS_PER_REPLY } from "./tool-arguments.js";

/** A model streams a token or so a chunk, and replies at most OPENAI_MAX_TOKENS (4,096 unless
 * set) of them. */
export const MAX_TOOL_CALL_CHUNKS = 20_000;

interface PartialCall {
  index: number | string | undefined;
  id: string | undefined;
  name: string | undefined;
  args: string[];
  chars: number;
}

export class StreamedReply {
  private readonly text: string[] = [];
  private readonly calls: PartialCall[] = [];
  private responseMetadata: Record<string, unknown> = {};
  private usage: UsageMetadata | undefined;
  private chunks = 0;
  private callChunks = 0;
  /** Set once a call past MAX_TOOL_CALLS_PER_REPLY began: the reply is complete as it stands. */
  private full = false;

  /** Takes the next chunk; false once the reply holds all the calls that can run (stop reading). */
  add(chunk: AIMessageChunk): boolean {
    this.chunks++;
    const text = chunk.text;
    if (text) this.text.push(text);
    const parts = chunk.tool_call_chunks ?? [];
    if (parts.length > 0 && ++this.callChunks > MAX_TOOL_CALL_CHUNKS) {
      throw new ModelServerFailure("not_chat_completion", `streamed its tool calls in more than ${MAX_TOOL_CALL_CHUNKS} chunks, far more than a reply of at most OPENAI_MAX_TOKENS tokens`);
    }
    for (const part of parts) {
      let call = this.calls.find((c) => sameCall(c, part));
      if (!call) {
        if (this.calls.length >= MAX_TOOL_CALLS_PER_REPLY) {
          this.full = true;
          break;
        }
        call = { index: part.index, id: undefined, name: undefined, args: [], chars: 0 };
        this.calls.push(call);
      }
      // As LangChain merges them: the latest id and name that say something, the text appended.
      if (part.id) call.id = part.id;
      if (part.name) call.name = part.name;
      if (part.args) {
        call.chars += part.args.length;
        checkArgumentsLength(call.chars);
        call.args.push(part.args);
      }
    }
    if (chunk.response_metadata) this.responseMetadata = mergeResponseMetadata(this.responseMetadata, chunk.response_metadata);
    if (chunk.usage_metadata) this.usage = mergeUsageMetadata(this.usage, chunk.usage_metadata);
    return !this.full;
  }

  /** Whether any chunk has arrived. */
  get empty(): boolean {
    return this.chunks === 0;
  }

  /** Whether a tool call has started (streamed text after it is not the answer's). */
  get calling(): boolean {
    return this.calls.length > 0;
  }

  message(): AIMessageChunk {
    return new AIMessageChunk({
      content: this.text.join(""),
      tool_call_chunks: this.calls.map((c) => ({ type: "tool_call_chunk", index: typeof c.index === "number" ? c.index : undefined, id: c.id, name: c.name, args: c.args.join("") })),
      // Read up to the calls that can run: those that followed were dropped, as was the end of
      // the stream, so the reply stands as ended by its calls.
      response_metadata: this.full ? { ...this.responseMetadata, finish_reason: "tool_calls" } : this.responseMetadata,
      ...(this.usage && { usage_metadata: this.usage }),
    });
  }
}

/** LangChain's rule (_findMergeTarget): the same index (and id, when both have one), or, with
 * no index on either, the same id. */
function sameCall(call: PartialCall, part: { index?: number | string | undefined; id?: string | undefined }): boolean {
  const mergeable = (index: unknown) => typeof index === "number" || typeof index === "string";
  if (mergeable(part.index) && mergeable(call.index)) return call.index === part.index && (!call.id || !part.id || call.id === part.id);
  return !mergeable(part.index) && !mergeable(call.index) && !!part.id && call.id === part.id;
}
