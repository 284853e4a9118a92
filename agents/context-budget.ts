// What fits in a small context window (MODEL_CONTEXT_TOKENS): the schema in the system prompt,
// the rows of each result the model sees, and earlier turns of the conversation, each a share of
// what is left once the fixed instructions, the tool definitions and the answer are set aside.
// Without a context size the configured budgets apply unchanged.

/** The system prompt without its schema (~500 tokens) and the tool definitions (~250). */
const FIXED_PROMPT_TOKENS = 800;
/** Room kept for the model's reply when OPENAI_MAX_TOKENS is unset. */
const DEFAULT_ANSWER_TOKENS = 512;
const SHARES = { schema: 0.4, result: 0.15, history: 0.15 } as const;
/** Characters per token assumed for result text (estimateTokens in schema-index.ts uses 3.5
 * for schema lines; cell values run shorter). */
const CHARS_PER_TOKEN = 3;
/** renderRows' cap without a context size. */
export const DEFAULT_RESULT_CHARS = 12_000;

export interface ContextBudget {
  schemaTokens: number;
  rowsToModel: number;
  /** Characters of one result the model sees. */
  resultChars: number;
  /** Earlier turns, newest first, while they fit. */
  historyTokens: number;
}

export function contextBudget(
  contextTokens: number | undefined,
  configured: { schemaTokens: number; rowsToModel: number },
  answerTokens: number | undefined,
): ContextBudget {
  if (contextTokens === undefined) return { ...configured, resultChars: DEFAULT_RESULT_CHARS, historyTokens: Infinity };
  const answer = Math.min(answerTokens ?? DEFAULT_ANSWER_TOKENS, Math.floor(contextTokens / 4));
  const free = Math.max(0, contextTokens - FIXED_PROMPT_TOKENS - answer);
  const resultChars = Math.min(DEFAULT_RESULT_CHARS, Math.max(200, Math.floor(free * SHARES.result * CHARS_PER_TOKEN)));
  return {
    // The schema context needs some room; below this the lookup tools do the work.
    schemaTokens: Math.min(configured.schemaTokens, Math.max(100, Math.floor(free * SHARES.schema))),
    // A row costs at least ~10 tokens: never more rows than could fit.
    rowsToModel: Math.min(configured.rowsToModel, Math.max(1, Math.floor(resultChars / (10 * CHARS_PER_TOKEN)))),
    resultChars,
    historyTokens: Math.floor(free * SHARES.history),
  };
}
