// Runs in the thread of the token-count pool (token-count.ts): o200k_base's encoder takes about
// a second to build and BPE can take seconds on hostile text, neither on the event loop.

import { Tiktoken } from "js-tiktoken/lite";
import o200kBase from "js-tiktoken/ranks/o200k_base";

const bpe = new Tiktoken(o200kBase);

/** Even here, a count must not take seconds (it holds up the answer, and the thread).
 * js-tiktoken's cost per character grows with the length of a run without whitespace (one
 * word to BPE) and is 5-10 times an ASCII character's for any other: on the event loop, a
 * question of 2,000 "中" took 3.9 s to count and a reply of 8,000 "x" 11.5 s, for anyone to
 * send as a question or for a model server to send as a reply. So a text is encoded in pieces
 * of at most PIECE_CHARS with runs of at most RUN_CHARS (a cut adds about a token), and only up
 * to COUNTED_COST (a character outside ASCII costing NON_ASCII_COST); the rest is counted at the
 * rate measured on that part. At most about 10 ms a text (runs of one letter, or of CJK), about
 * 1-2 ms on prose or rows; within 2% of the exact count on prose in English, French or Chinese,
 * 10-20% high on rows of numbers and base64. */
const PIECE_CHARS = 256;
const RUN_CHARS = 16;
const COUNTED_COST = 1024;
const NON_ASCII_COST = 8;

function countTokens(text: string): number {
  let tokens = 0;
  let budget = COUNTED_COST;
  let start = 0;
  let run = 0;
  let cost = 0;
  let i = 0;
  for (; i < text.length && budget > 0; i++) {
    const code = text.charCodeAt(i);
    run = code <= 0x20 ? 0 : run + 1;
    if (run > RUN_CHARS || i - start >= PIECE_CHARS) {
      tokens += bpe.encode(text.slice(start, i)).length;
      budget -= cost;
      [start, cost, run] = [i, 0, Math.min(run, 1)];
    }
    cost += code > 0x7f ? NON_ASCII_COST : 1;
  }
  if (i > start) tokens += bpe.encode(text.slice(start, i)).length;
  return i === text.length ? tokens : Math.ceil((tokens * text.length) / i);
}

export default function countInWorker(texts: string[]): number[] {
  return texts.map(countTokens);
}
