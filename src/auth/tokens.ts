// Access tokens: HS256 JWTs (jose) naming the user, the session they opened at login, and the
// user's token generation at the time (raised to revoke all their tokens at once).
//
// Rotation: tokens are signed with JWT_SECRET only, and verified with it or any of
// JWT_SECRET_PREVIOUS, so a token issued before the change lives out its lifetime.

import { errors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { createLRU } from "lru.min";

import { DomainError } from "../errors.js";

export interface TokenClaims {
  userId: number;
  sessionId: string;
  /** The user's token generation when the token was issued (claim `gen`). */
  generation: number;
}

export interface VerifiedToken extends TokenClaims {
  /** A login's token, as opposed to an API key (src/auth/api-keys.ts). */
  kind: "login";
  /** Epoch milliseconds. */
  expiresAt: number;
}

export async function issueToken(claims: TokenClaims, secret: Uint8Array, expiresInSeconds: number): Promise<string> {
  return new SignJWT({ sid: claims.sessionId, gen: claims.generation })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(claims.userId))
    .setIssuedAt()
    .setExpirationTime(`${expiresInSeconds}s`)
    .sign(secret);
}

/** The payload of `token` as the first of `secrets` whose signature it bears verifies it. jose
 * checks the signature before any claim, so only a signature that does not match moves on to
 * the next secret (jose's own way with several candidate keys, JWKSMultipleMatchingKeys); an
 * expired or malformed token is refused by the secret that signed it, as it was with one. */
async function verifiedPayload(token: string, secrets: readonly Uint8Array[], now: number): Promise<JWTPayload> {
  for (const [i, secret] of secrets.entries()) {
    try {
      return (await jwtVerify(token, secret, { algorithms: ["HS256"], currentDate: new Date(now) })).payload;
    } catch (err) {
      if (!(err instanceof errors.JWSSignatureVerificationFailed) || i === secrets.length - 1) throw err;
    }
  }
  throw new errors.JWSSignatureVerificationFailed();
}

/** Verifies signature (with any of `secrets`: the current one, then previous ones), algorithm
 * (HS256 only: never "none") and expiry. */
export async function verifyToken(token: string, secrets: readonly Uint8Array[], now: number = Date.now()): Promise<VerifiedToken> {
  try {
    const payload = await verifiedPayload(token, secrets, now);
    const userId = Number(payload.sub);
    // Tokens issued before generations existed carry none: they belong to generation 0, which
    // every user had then, so a password change since refuses them like any other.
    const generation = payload.gen ?? 0;
    if (
      !Number.isSafeInteger(userId) ||
      userId <= 0 ||
      typeof payload.sid !== "string" ||
      typeof payload.exp !== "number" ||
      !Number.isSafeInteger(generation) ||
      (generation as number) < 0
    ) {
      throw new DomainError("unauthorized", "Token is missing its subject, session or expiry");
    }
    return { kind: "login", userId, sessionId: payload.sid, generation: generation as number, expiresAt: payload.exp * 1000 };
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (err instanceof errors.JWTExpired) throw new DomainError("unauthorized", "Token has expired; log in again");
    throw new DomainError("unauthorized", "Invalid token");
  }
}

/** Remembers tokens already verified, until they expire: a client sends the same token on
 * every call, and an HMAC check through WebCrypto costs more than the rest of a small query's
 * overhead. The cache is keyed by the whole token, signature included, so only the exact
 * bytes that verified are trusted again. `cached` answers without a promise, for callers on a
 * hot path. Whether a verified token was since revoked is another question (token-standing.ts). */
export function createTokenVerifier(secrets: readonly Uint8Array[], maxEntries = 10_000, now: () => number = Date.now) {
  // Least recently used out first: tokens in use stay, however many others were verified.
  const verified = createLRU<string, Readonly<VerifiedToken>>({ max: maxEntries });
  const cached = (token: string): Readonly<VerifiedToken> | undefined => {
    const hit = verified.get(token);
    if (hit && hit.expiresAt > now()) return hit;
    if (hit) verified.delete(token);
    return undefined;
  };
  const verify = async (token: string): Promise<Readonly<VerifiedToken>> => {
    const hit = cached(token);
    if (hit) return hit;
    const claims = await verifyToken(token, secrets, now());
    verified.set(token, claims);
    return claims;
  };
  return Object.assign(verify, { cached });
}
