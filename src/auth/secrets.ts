// Seals stored database passwords with AES-256-GCM (node:crypto). The owner id is bound as
// additional data, so a sealed value copied onto another user's row does not open.
//
// Rotation: a value is sealed under SECRETS_KEY only, and opened with SECRETS_KEY or any of
// SECRETS_KEY_PREVIOUS. No key id is stored: GCM's tag already tells a wrong key (a wrong key
// passes it with a chance of 2^-128), so v1 values need no new format to be rotated.

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The keys a sealed value may be under: the current one (which seals) first, then the
 * previous ones, in the order given. */
export const openingKeys = (config: { secretsKey: Buffer; previousSecretsKeys: readonly Buffer[] }): Buffer[] => [config.secretsKey, ...config.previousSecretsKeys];

export function sealSecret(plain: string, key: Buffer, context: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
  return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`;
}

export interface Opened {
  plain: string;
  /** Which of the keys opened it: 0 is the current one, so 0 needs no re-sealing. */
  keyIndex: number;
}

/** Opens `sealed` with the first of `keys` that does. None does: the first key's error, the
 * one a single key threw before rotation existed. */
export function openSealed(sealed: string, keys: readonly Buffer[], context: string): Opened {
  const [version, payload] = sealed.split(":", 2);
  if (version !== VERSION || !payload) throw new Error("Unknown sealed secret format");
  const raw = Buffer.from(payload, "base64");
  let firstError: unknown;
  for (const [keyIndex, key] of keys.entries()) {
    try {
      return { plain: openWith(raw, key, context), keyIndex };
    } catch (err) {
      firstError ??= err;
    }
  }
  throw firstError ?? new Error("No key to open a sealed secret with");
}

export const openSecret = (sealed: string, keys: readonly Buffer[], context: string): string => openSealed(sealed, keys, context).plain;

function openWith(raw: Buffer, key: Buffer, context: string): string {
  // The tag's length fixed: GCM otherwise checks a shorter tag as given, and a cut value would
  // pass a wrong key once in 2^32 (4 bytes), not 2^128, for each key a rotation tries.
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
}
