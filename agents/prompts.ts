// Prompt texts live in prompts/ as plain files; they are read once at start and checked, so
// a missing file or a renamed placeholder fails the boot instead of one question at a time.

import { readFileSync } from "node:fs";
import path from "node:path";

import { projectPath } from "../src/paths.js";

export interface Prompts {
  /** System prompt of the SQL agent. */
  sqlAgent: string;
  /** Added to the system prompt when SQL is run through fenced blocks instead of tool calls. */
  sqlAgentText: string;
}

/** Every placeholder each file must contain: code fills these and nothing else. */
const REQUIRED: Record<keyof Prompts, { file: string; placeholders: string[] }> = {
  sqlAgent: { file: "sql-agent.md", placeholders: ["dialect", "quote", "schema", "schema_scope", "max_rows", "max_steps"] },
  sqlAgentText: { file: "sql-agent-text.md", placeholders: [] },
};

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

export function loadPrompts(dir: string = projectPath("prompts")): Prompts {
  const prompts = {} as Prompts;
  for (const [key, { file, placeholders }] of Object.entries(REQUIRED) as [keyof Prompts, (typeof REQUIRED)[keyof Prompts]][]) {
    const filePath = path.join(dir, file);
    let text: string;
    try {
      text = readFileSync(filePath, "utf8");
    } catch (err) {
      throw new Error(`Prompt file ${filePath} could not be read: ${(err as Error).message}`);
    }
    const present = new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]));
    const missing = placeholders.filter((p) => !present.has(p));
    if (missing.length > 0) throw new Error(`Prompt file ${filePath} lacks placeholder(s): ${missing.map((p) => `{{${p}}}`).join(", ")}`);
    const unknown = [...present].filter((p) => p !== undefined && !placeholders.includes(p));
    if (unknown.length > 0) throw new Error(`Prompt file ${filePath} has unknown placeholder(s): ${unknown.map((p) => `{{${p}}}`).join(", ")}`);
    prompts[key] = text;
  }
  return prompts;
}

/** Fills `{{name}}` placeholders in one pass, so a value that itself contains `{{...}}`
 * (a table comment, say) is never expanded. */
export function renderPrompt(template: string, values: Record<string, string | number>): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`No value for prompt placeholder {{${name}}}`);
    return String(value);
  });
}

let cached: Prompts | undefined;

/** The project's prompts, loaded on first use (main.ts calls `loadPrompts()` at start to fail early). */
export function defaultPrompts(): Prompts {
  cached ??= loadPrompts();
  return cached;
}
