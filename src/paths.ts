// Locates files shipped with the project (migrations/, prompts/, package.json) whether the
// code runs from source (tsx, vitest) or compiled under dist/.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

function findProjectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "pulse") {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("package.json of pulse not found above " + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const projectRoot = findProjectRoot();

export const projectPath = (...segments: string[]) => path.join(projectRoot, ...segments);

export const packageVersion = (): string =>
  (JSON.parse(readFileSync(projectPath("package.json"), "utf8")) as { version: string }).version;
