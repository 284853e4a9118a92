// Sealing of stored database passwords: AES-256-GCM bound to the owner, opened with the
// current key or a previous one (SECRETS_KEY_PREVIOUS).

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

import { openSealed, openSecret, sealSecret } from "../../src/auth/secrets.js";

const key = randomBytes(32);

describe("sealSecret / openSecret", () => {
  it.each(["", "p@ss", "ünïcødé 密码", "x".repeat(1000)])("round-trips %j", (plain) => {
    expect(openSecret(sealSecret(plain, key, "ctx"), [key], "ctx")).toBe(plain);
  });

  it("never contains the clear text and differs on every seal", () => {
    const a = sealSecret("hunter2-secret", key, "ctx");
    const b = sealSecret("hunter2-secret", key, "ctx");
    expect(a).not.toBe(b);
    expect(a).not.toContain("hunter2");
    expect(Buffer.from(a.slice(3), "base64").toString("latin1")).not.toContain("hunter2");
  });

  it("refuses another owner's context, another key, and any tampering", () => {
    const sealed = sealSecret("secret", key, "db_connection:owner:1");
    expect(() => openSecret(sealed, [key], "db_connection:owner:2")).toThrow();
    expect(() => openSecret(sealed, [randomBytes(32)], "db_connection:owner:1")).toThrow();
    const raw = Buffer.from(sealed.slice(3), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => openSecret(`v1:${raw.toString("base64")}`, [key], "db_connection:owner:1")).toThrow();
    expect(() => openSecret("v0:abc", [key], "db_connection:owner:1")).toThrow(/format/);
  });

  it("refuses a value whose tag is cut short, under any key", () => {
    // GCM checks only as many tag bytes as it is given: a 4-byte tag would let a wrong key (or
    // a forged value) through once in 2^32, not 2^128, and rotation tries every key listed.
    const previous = randomBytes(32);
    const raw = Buffer.from(sealSecret("", previous, "ctx").slice(3), "base64");
    for (const tagBytes of [4, 8, 12, 15]) {
      const cut = `v1:${raw.subarray(0, 12 + tagBytes).toString("base64")}`;
      expect(() => openSealed(cut, [key, previous], "ctx")).toThrow();
    }
  });

  it("opens a value sealed under a previous key, saying which key opened it", () => {
    const previous = randomBytes(32);
    const older = randomBytes(32);
    const sealed = sealSecret("secret", previous, "ctx");
    expect(openSealed(sealed, [key, older, previous], "ctx")).toEqual({ plain: "secret", keyIndex: 2 });
    expect(openSealed(sealSecret("secret", key, "ctx"), [key, previous], "ctx")).toEqual({ plain: "secret", keyIndex: 0 });
    // The owner is still bound whichever key opens it.
    expect(() => openSecret(sealed, [key, previous], "other")).toThrow();
  });

  it("fails as a single key did when no key opens it", () => {
    const sealed = sealSecret("secret", randomBytes(32), "ctx");
    let single: unknown;
    try {
      openSecret(sealed, [key], "ctx");
    } catch (err) {
      single = err;
    }
    expect(single).toBeInstanceOf(Error);
    expect(() => openSecret(sealed, [key, randomBytes(32), randomBytes(32)], "ctx")).toThrow((single as Error).message);
  });
});
