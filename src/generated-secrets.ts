// The keys Pulse signs tokens and seals stored passwords with, when a deployment gives none
// (outside production): generated once and kept in $DATA_DIR/secrets.json, so restarts keep
// sessions and stored passwords readable. A file that does not hold usable keys is refused,
// never used: an empty JWT key made every login answer 500, a short one signed forgeable tokens.

import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { dataDirError, StartupError } from "./startup-error.js";

/** JWT_SECRET's rule, and the generated one's. */
export const MIN_JWT_SECRET_CHARS = 32;

export interface GeneratedSecrets {
  jwtSecret: string;
  secretsKey: string;
}

/** A 32-byte key given as 64 hex characters or as base64; null when it is neither. */
export function decodeKey(text: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const key = Buffer.from(text, "base64");
    if (key.length === 32) return key;
  }
  return null;
}

/** Where the secrets Pulse generates are kept in `dataDir`. */
export const generatedSecretsFile = (dataDir: string) => path.join(dataDir, "secrets.json");

/** The secrets kept in `dataDir`, made there first if there are none. */
export function generatedSecrets(dataDir: string): GeneratedSecrets {
  const file = generatedSecretsFile(dataDir);
  return readSecrets(file) ?? writeSecrets(dataDir, file);
}

/** null only when the file is not there: any other failure to read it must not be papered over
 * with new keys (a read-only or unreadable DATA_DIR would lose every stored password). */
function readSecrets(file: string): GeneratedSecrets | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw dataDirError("read", file, err);
  }
  return parseSecrets(file, text);
}

function parseSecrets(file: string, text: string): GeneratedSecrets {
  let secrets: Partial<Record<keyof GeneratedSecrets, unknown>> | undefined;
  try {
    // null, an array or a number parse too: none holds the keys, as an empty object does not.
    secrets = { ...(JSON.parse(text) as object) };
  } catch {
    // Named below, as any other content that is not two usable keys.
  }
  const problem = problemOf(text, secrets);
  if (problem) {
    throw new StartupError(
      `DATA_DIR: ${file} does not hold usable generated secrets (${problem}); ` +
        `restore it from a backup, set JWT_SECRET and SECRETS_KEY, or delete it to have new ones made (everyone is signed out, and stored connection passwords become unreadable: users re-enter them)`,
    );
  }
  return secrets as GeneratedSecrets;
}

/** Why the file's content is not two usable keys (the rules JWT_SECRET and SECRETS_KEY meet). */
function problemOf(text: string, secrets: Partial<Record<keyof GeneratedSecrets, unknown>> | undefined): string | null {
  if (!secrets) return text.trim() === "" ? "it is empty" : "it is not JSON";
  const { jwtSecret, secretsKey } = secrets;
  if (typeof jwtSecret !== "string" || jwtSecret.length < MIN_JWT_SECRET_CHARS) return `its jwtSecret is not a string of at least ${MIN_JWT_SECRET_CHARS} characters`;
  if (typeof secretsKey !== "string" || decodeKey(secretsKey) === null) return "its secretsKey is not 32 bytes as 64 hex characters or base64";
  return null;
}

/** Written whole under a private name, then linked into place: a crash leaves no empty file
 * behind, and of two processes starting at once the second finds the first's (link() fails
 * on an existing file) instead of replacing the key the first already uses. */
function writeSecrets(dataDir: string, file: string): GeneratedSecrets {
  const secrets: GeneratedSecrets = {
    jwtSecret: randomBytes(48).toString("base64url"),
    secretsKey: randomBytes(32).toString("hex"),
  };
  const mine = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw dataDirError("create", dataDir, err);
  }
  try {
    writeFileSync(mine, JSON.stringify(secrets), { mode: 0o600, flush: true });
    linkSync(mine, file);
    return secrets;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return readSecrets(file)!;
    throw dataDirError("write", file, err);
  } finally {
    rmSync(mine, { force: true });
  }
}
