// Token verification and its cache: only the exact token that verified is trusted again, and
// only until it expires.

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

import { createTokenVerifier, issueToken } from "../../src/auth/tokens.js";

const secret = randomBytes(32);

describe("createTokenVerifier", () => {
  it("returns the claims of a valid token, from the cache on the second call", async () => {
    const verify = createTokenVerifier(secret);
    const token = await issueToken({ userId: 7, sessionId: "s-1" }, secret, 60);
    expect(await verify(token)).toEqual({ userId: 7, sessionId: "s-1" });
    expect(await verify(token)).toEqual({ userId: 7, sessionId: "s-1" });
  });

  it("rejects a token once it has expired, even after caching it", async () => {
    let clock = Date.now();
    const verify = createTokenVerifier(secret, 10, () => clock);
    const token = await issueToken({ userId: 7, sessionId: "s-1" }, secret, 60);
    await verify(token);
    clock += 61_000;
    await expect(verify(token)).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("does not trust a token that differs from a cached one in its signature", async () => {
    const verify = createTokenVerifier(secret);
    const token = await issueToken({ userId: 7, sessionId: "s-1" }, secret, 60);
    await verify(token);
    const forged = token.slice(0, -2) + (token.endsWith("A") ? "BB" : "AA");
    await expect(verify(forged)).rejects.toMatchObject({ code: "unauthorized" });
  });
});
