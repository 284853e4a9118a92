// Token verification and its cache: only the exact token that verified is trusted again, and
// only until it expires; a token signed with a previous secret (JWT_SECRET_PREVIOUS) verifies.

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

import { SignJWT } from "jose";

import { createTokenVerifier, issueToken, verifyToken } from "../../src/auth/tokens.js";

const secret = randomBytes(32);

describe("createTokenVerifier", () => {
  it("returns the claims of a valid token, from the cache on the second call", async () => {
    const verify = createTokenVerifier([secret]);
    const token = await issueToken({ userId: 7, sessionId: "s-1", generation: 2 }, secret, 60);
    expect(await verify(token)).toMatchObject({ userId: 7, sessionId: "s-1", generation: 2 });
    expect(await verify(token)).toMatchObject({ userId: 7, sessionId: "s-1", generation: 2 });
  });

  it("rejects a token once it has expired, even after caching it", async () => {
    let clock = Date.now();
    const verify = createTokenVerifier([secret], 10, () => clock);
    const token = await issueToken({ userId: 7, sessionId: "s-1", generation: 2 }, secret, 60);
    await verify(token);
    clock += 61_000;
    await expect(verify(token)).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("keeps the tokens in use when full, dropping the least recently used", async () => {
    const verify = createTokenVerifier([secret], 2);
    const [a, b, c] = await Promise.all(["s-a", "s-b", "s-c"].map((sessionId) => issueToken({ userId: 7, sessionId, generation: 0 }, secret, 60)));
    await verify(a!);
    await verify(b!);
    expect(verify.cached(a!)).toBeDefined();
    await verify(c!);
    expect(verify.cached(a!), "used since b").toBeDefined();
    expect(verify.cached(b!)).toBeUndefined();
    expect(verify.cached(c!)).toBeDefined();
  });

  it("does not trust a token that differs from a cached one in its signature", async () => {
    const verify = createTokenVerifier([secret]);
    const token = await issueToken({ userId: 7, sessionId: "s-1", generation: 2 }, secret, 60);
    await verify(token);
    const forged = token.slice(0, -2) + (token.endsWith("A") ? "BB" : "AA");
    await expect(verify(forged)).rejects.toMatchObject({ code: "unauthorized" });
  });
});

describe("verifyToken", () => {
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject("7").setExpirationTime("60s").sign(secret);

  it("reads a token without a generation (issued before generations existed) as generation 0", async () => {
    expect(await verifyToken(await sign({ sid: "s-1" }), [secret])).toMatchObject({ userId: 7, generation: 0 });
  });

  it.each([["negative", -1], ["fractional", 1.5], ["a string", "3"]])("refuses a %s generation", async (_, gen) => {
    await expect(verifyToken(await sign({ sid: "s-1", gen }), [secret])).rejects.toMatchObject({ code: "unauthorized" });
  });
});

describe("verifyToken with previous secrets (rotation)", () => {
  const previous = randomBytes(32);
  const older = randomBytes(32);

  it("accepts a token signed with the current secret or any previous one, and no other", async () => {
    for (const signer of [secret, previous, older]) {
      const token = await issueToken({ userId: 7, sessionId: "s-1", generation: 1 }, signer, 60);
      expect(await verifyToken(token, [secret, previous, older])).toMatchObject({ userId: 7, sessionId: "s-1", generation: 1 });
    }
    const stranger = await issueToken({ userId: 7, sessionId: "s-1", generation: 1 }, randomBytes(32), 60);
    await expect(verifyToken(stranger, [secret, previous])).rejects.toMatchObject({ code: "unauthorized", message: "Invalid token" });
    const old = await issueToken({ userId: 7, sessionId: "s-1", generation: 1 }, previous, 60);
    await expect(verifyToken(old, [secret])).rejects.toMatchObject({ code: "unauthorized", message: "Invalid token" });
  });

  it("says a previous secret's token has expired, as the current one's", async () => {
    const token = await issueToken({ userId: 7, sessionId: "s-1", generation: 0 }, previous, 60);
    await expect(verifyToken(token, [secret, previous], Date.now() + 61_000)).rejects.toMatchObject({ code: "unauthorized", message: "Token has expired; log in again" });
  });
});
