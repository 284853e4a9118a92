// Access tokens: HS256 JWTs (jose) naming the user and the session they opened at login.

import { errors, jwtVerify, SignJWT } from "jose";

import { DomainError } from "../errors.js";

export interface TokenClaims {
  userId: number;
  sessionId: string;
}

export interface VerifiedToken extends TokenClaims {
  /** Epoch milliseconds. */
  expiresAt: number;
}

export async function issueToken(claims: TokenClaims, secret: Uint8Array, expiresInSeconds: number): Promise<string> {
  return new SignJWT({ sid: claims.sessionId })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(claims.userId))
    .setIssuedAt()
    .setExpirationTime(`${expiresInSeconds}s`)
    .sign(secret);
}

/** Verifies signature, algorithm (HS256 only: never "none") and expiry. */
export async function verifyToken(token: string, secret: Uint8Array, now: number = Date.now()): Promise<VerifiedToken> {
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"], currentDate: new Date(now) });
    const userId = Number(payload.sub);
    if (!Number.isSafeInteger(userId) || userId <= 0 || typeof payload.sid !== "string" || typeof payload.exp !== "number") {
      throw new DomainError("unauthorized", "Token is missing its subject, session or expiry");
    }
    return { userId, sessionId: payload.sid, expiresAt: payload.exp * 1000 };
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
 * hot path. */
export function createTokenVerifier(secret: Uint8Array, maxEntries = 10_000, now: () => number = Date.now) {
  const verified = new Map<string, VerifiedToken>();
  const cached = (token: string): TokenClaims | undefined => {
    const hit = verified.get(token);
    if (hit && hit.expiresAt > now()) return { userId: hit.userId, sessionId: hit.sessionId };
    if (hit) verified.delete(token);
    return undefined;
  };
  const verify = async (token: string): Promise<TokenClaims> => {
    const hit = cached(token);
    if (hit) return hit;
    const claims = await verifyToken(token, secret, now());
    if (verified.size >= maxEntries) verified.clear();
    verified.set(token, claims);
    return { userId: claims.userId, sessionId: claims.sessionId };
  };
  return Object.assign(verify, { cached });
}
