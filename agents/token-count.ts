// Token counts for servers that report no usage (llama-cpp-python's streams, proxies that drop
// it): o200k_base counted locally, offline, and always reported as an estimate. A local model's
// own tokenizer differs; the count is of the same order, not the same number.

import { Tiktoken } from "js-tiktoken/lite";
import o200kBase from "js-tiktoken/ranks/o200k_base";

let encoder: Tiktoken | undefined;

/** Built on first use (~0.2 s): a process whose server reports usage never pays for it. */
export function countTokens(text: string): number {
  encoder ??= new Tiktoken(o200kBase);
  return encoder.encode(text).length;
}

/** Chat formats add a few tokens around each message (role markers, separators). */
export const TOKENS_PER_MESSAGE = 4;
