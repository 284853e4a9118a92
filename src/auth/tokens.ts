// Access tokens: HS256 JWTs (jose) naming the user and the session they opened at login.

import { errors, jwtVerify, SignJWT } from "jose";

import { DomainError } from "../errors.js";

export interface TokenClaims {
  userId: number;
  sessionId: string;
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
export async function verifyToken(token: string, secret: Uint8Array): Promise<TokenClaims> {
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"] });
    const userId = Number(payload.sub);
    if (!Number.isSafeInteger(userId) || userId <= 0 || typeof payload.sid !== "string") {
      throw new DomainError("unauthorized", "Token is missing its subject or session");
    }
    return { userId, sessionId: payload.sid };
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (err instanceof errors.JWTExpired) throw new DomainError("unauthorized", "Token has expired; log in again");
    throw new DomainError("unauthorized", "Invalid token");
  }
}
