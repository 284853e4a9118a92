// Which revocations stop which work under way (src/auth/revocation-watch.ts): a key's or a
// session's at once; a user's (a password change, a deletion) and a gap in the announcements
// only once the store says the credential no longer stands.

import { describe, expect, it, vi } from "vitest";

import { createRevocationWatch, type WatchedCredential } from "../../src/auth/revocation-watch.js";

const login = (stands: () => Promise<boolean> = async () => true): WatchedCredential => ({ userId: 1, sessionId: "s1", keyId: null, stands });
const key = (stands: () => Promise<boolean> = async () => true): WatchedCredential => ({ userId: 1, sessionId: "key:9", keyId: 9, stands });

function watched(credential: WatchedCredential, onCheckError: (err: unknown) => void = () => undefined) {
  const watch = createRevocationWatch(onCheckError);
  const controller = new AbortController();
  const done = watch.watch(credential, controller);
  return { watch, signal: controller.signal, done };
}

describe("revocation watch", () => {
  it("stops a key's work when that key is revoked, with a 401 as the reason, and no other key's", () => {
    const { watch, signal } = watched(key());
    watch.revoked({ keyId: 8 });
    watch.revoked({ sessionId: "s1" });
    expect(signal.aborted).toBe(false);
    watch.revoked({ keyId: 9 });
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toMatchObject({ code: "unauthorized" });
  });

  it("stops a login's work when its session logs out", () => {
    const { watch, signal } = watched(login());
    watch.revoked({ sessionId: "s2" });
    expect(signal.aborted).toBe(false);
    watch.revoked({ sessionId: "s1" });
    expect(signal.aborted).toBe(true);
  });

  it("on a user's revocation, stops only the work whose credential the store no longer knows", async () => {
    const gone = watched(login(async () => false));
    const kept = watched(key(async () => true));
    gone.watch.revoked({ userId: 2 });
    await Promise.resolve();
    expect(gone.signal.aborted).toBe(false);
    gone.watch.revoked({ userId: 1 });
    kept.watch.revoked({ userId: 1 });
    await vi.waitFor(() => expect(gone.signal.aborted).toBe(true));
    expect(kept.signal.aborted).toBe(false);
  });

  it("after a gap in the announcements, asks the store about every credential at work", async () => {
    const stands = vi.fn(async () => false);
    const { watch, signal } = watched(login(stands));
    watch.revoked("everything");
    await vi.waitFor(() => expect(signal.aborted).toBe(true));
    expect(stands).toHaveBeenCalledTimes(1);
  });

  it("leaves the work running when the store cannot answer, and says so", async () => {
    const onCheckError = vi.fn();
    const { watch, signal } = watched(login(async () => Promise.reject(new Error("store away"))), onCheckError);
    watch.revoked({ userId: 1 });
    await vi.waitFor(() => expect(onCheckError).toHaveBeenCalledTimes(1));
    expect(signal.aborted).toBe(false);
  });

  it("forgets work once it is done", () => {
    const { watch, signal, done } = watched(key());
    done();
    watch.revoked({ keyId: 9 });
    expect(signal.aborted).toBe(false);
  });
});
