// Account verbs: register, log in (opening a session), read oneself, and the ones that revoke
// tokens: log out, change one's password, delete one's account.

import { randomUUID } from "node:crypto";

import { issueToken, type VerifiedToken } from "../auth/tokens.js";
import type { Deps } from "../deps.js";
import { DomainError, notFound, RateLimitedError } from "../errors.js";
import type { UserRow } from "../store/schema.js";
import { revokeSession } from "../store/revocations.js";
import { deleteUser, findUserByEmail, getUser, insertUser, rehashPassword, setPassword } from "../store/users.js";
import { disconnectSession } from "./database-sessions.js";
import { countTry, giveTryBack } from "../rate-limits.js";
import { removeLeftovers } from "./session-leftovers.js";

export interface PublicUser {
  id: number;
  name: string;
  email: string;
  created_at: string;
}

export const publicUser = (row: UserRow): PublicUser => ({
  id: row.id,
  name: row.name,
  email: row.email,
  created_at: row.createdAt.toISOString(),
});

export async function registerUser(
  deps: Deps,
  input: { name: string; email: string; password: string; clientIp: string },
): Promise<PublicUser> {
  // Each sign-up costs a bcrypt hash and a row: limited per address and in total, like logins.
  const { maxPerClient, maxTotal, windowSeconds } = deps.config.register;
  await countTry(deps, `register:client:${input.clientIp}`, { max: maxPerClient, windowSeconds }, "Too many sign-ups from this client; try again later");
  await countTry(deps, "register:total", { max: maxTotal, windowSeconds }, "Too many sign-ups right now; try again later");
  const passwordHash = await deps.passwords.hash(input.password);
  const row = await insertUser(deps.store.db, { name: input.name, email: input.email, passwordHash });
  if (!row) throw new DomainError("conflict", "A user with this email already exists");
  return publicUser(row);
}

/** The addresses an account last logged in from, which the ceiling across clients spares; kept
 * this long after the latest new one. */
const KNOWN_CLIENT_SECONDS = 30 * 86_400;
const KNOWN_CLIENTS_KEPT = 20;

/** What login keeps per (lower-case) email: failures across clients, and the known clients. */
const loginKeysOf = (email: string) => ({ accountKey: `login:account:${email}`, knownKey: `login:known-clients:${email}` });

export async function login(
  deps: Deps,
  input: { email: string; password: string; clientIp: string },
): Promise<NewToken> {
  const { maxPerAccount, maxPerAccountAllClients, maxPerClient, windowSeconds } = deps.config.login;
  const email = input.email.toLowerCase();
  await countTry(deps, `login:client:${input.clientIp}`, { max: maxPerClient, windowSeconds }, "Too many login attempts from this client; try again later");
  // Failures lock an account per client, so that whoever hammers it from elsewhere cannot lock
  // the owner out. The much higher ceiling across clients stops guesses spread over many
  // addresses; it spares the addresses the account has logged in from.
  const pairKey = `login:account-client:${email}:${input.clientIp}`;
  const { accountKey, knownKey } = loginKeysOf(email);
  // Each attempt counts as a failure before the password is checked, and is given back once it
  // proves right: attempts sent at once cannot all pass a count that only failures raised.
  const giveBack = (...keys: string[]) => Promise.all(keys.map((key) => giveTryBack(deps, key, windowSeconds)));
  await countTry(deps, pairKey, { max: maxPerAccount, windowSeconds }, "Too many failed login attempts for this account from this client; try again later");
  const all = await deps.sessions.hit(accountKey, windowSeconds);
  if (all.count > maxPerAccountAllClients && !(await deps.sessions.listItems(knownKey)).includes(input.clientIp)) {
    await giveBack(pairKey, accountKey);
    throw new RateLimitedError("Too many failed login attempts for this account; try again later", all.resetsInSeconds);
  }
  let user: UserRow | null;
  let right: boolean;
  try {
    user = await findUserByEmail(deps.store.db, email);
    right = await deps.passwords.verify(input.password, user?.passwordHash ?? null);
  } catch (err) {
    // The store or the hashers failed (503): that was no wrong password.
    await giveBack(pairKey, accountKey).catch(() => undefined);
    throw err;
  }
  if (!right || !user) throw new DomainError("unauthorized", "Incorrect email or password");
  await giveBack(pairKey, accountKey);
  if (deps.passwords.outdated(user.passwordHash)) await rehash(deps, user, input.password);
  await countTry(
    deps,
    `login:sessions:${user.id}`,
    deps.config.sessionsPerAccount,
    "Too many sessions opened for this account; reuse a token you have, or give scripts an API key",
  );
  if (!(await deps.sessions.listItems(knownKey)).includes(input.clientIp)) {
    await deps.sessions.pushBounded(knownKey, input.clientIp, KNOWN_CLIENTS_KEPT, KNOWN_CLIENT_SECONDS, "renewed");
  }
  return openSession(deps, user);
}

/** Hashes a proven password again at BCRYPT_ROUNDS, once that has changed: accounts converge on
 * one cost, so none is quicker to check than an unknown email. The login goes on if this fails;
 * the next one tries again. */
async function rehash(deps: Deps, user: UserRow, password: string): Promise<void> {
  try {
    await rehashPassword(deps.store.db, user.id, await deps.passwords.hash(password), user.passwordHash);
  } catch (err) {
    deps.logger.warn({ err, user_id: user.id }, "a password hash could not be remade at BCRYPT_ROUNDS; the next login tries again");
  }
}

export type NewToken = { access_token: string; token_type: "bearer"; expires_in: number; session_id: string };

/** A new session of `user` and its token, of the user's current token generation. */
async function openSession(deps: Deps, user: UserRow): Promise<NewToken> {
  const sessionId = randomUUID();
  await deps.sessions.create(sessionId, user.id, deps.config.sessionTtlSeconds);
  const expiresIn = deps.config.jwtExpiresSeconds;
  const accessToken = await issueToken({ userId: user.id, sessionId, generation: user.tokenGeneration }, deps.config.jwtSecret, expiresIn);
  return { access_token: accessToken, token_type: "bearer", expires_in: expiresIn, session_id: sessionId };
}

export async function getMe(deps: Deps, userId: number): Promise<PublicUser> {
  const row = await getUser(deps.store.db, userId);
  if (!row) throw notFound("User");
  return publicUser(row);
}

/** Revokes the caller's token (its session) for good, and ends the session as disconnecting
 * does. */
export async function logout(deps: Deps, auth: VerifiedToken): Promise<void> {
  await revokeSession(deps.store.db, auth.sessionId, new Date(auth.expiresAt));
  await deps.tokens.revoked({ sessionId: auth.sessionId });
  // The token is dead from here on.
  await removeLeftovers(deps, () => disconnectSession(deps, auth.userId, auth.sessionId), "logout: the session store is away; the session's record is left to expire", { user_id: auth.userId });
}

/** Sets a new password and revokes every token of the user, this one included; answers a
 * token of a new session. */
export async function changePassword(
  deps: Deps,
  auth: VerifiedToken,
  input: { currentPassword: string; newPassword: string },
): Promise<NewToken> {
  const confirmed = await confirmPassword(deps, auth, input.currentPassword, "current_password");
  const passwordHash = await deps.passwords.hash(input.newPassword);
  // Only over the password just confirmed: of two changes at once, the second was confirmed
  // against a password that is no longer current.
  const user = await setPassword(deps.store.db, auth.userId, passwordHash, confirmed.passwordHash);
  if (!user) {
    if (!(await getUser(deps.store.db, auth.userId))) throw notFound("User");
    throw passwordChangedMeanwhile("current_password");
  }
  await deps.tokens.revoked({ userId: auth.userId });
  return openSession(deps, user);
}

/** Deletes the user and all they own, revokes their tokens, and closes their connectors on
 * every instance, so nothing they opened keeps running. Then what the session store keeps for
 * them: every session (keys' too) with its cached schema, their conversations, and what login
 * knows of their email (a new account with it starts afresh). */
export async function deleteAccount(deps: Deps, auth: VerifiedToken, password: string): Promise<void> {
  const user = await confirmPassword(deps, auth, password, "password");
  const connectionIds = await deleteUser(deps.store.db, auth.userId);
  if (!connectionIds) throw notFound("User");
  await deps.tokens.revoked({ userId: auth.userId });
  await Promise.all(connectionIds.map((id) => deps.connectors.evict(id)));
  const { accountKey, knownKey } = loginKeysOf(user.email);
  await removeLeftovers(
    deps,
    () => Promise.all([deps.sessions.deleteOwned(auth.userId), deps.sessions.deleteKeys({ lists: [knownKey], counters: [accountKey] })]),
    "delete account: the session store is away; the user's sessions and conversations are left to expire",
    { user_id: auth.userId },
  );
}

/** The user, once `password` is proven theirs. Every try counts, as many per window as a
 * login's failures for the account: a stolen token cannot be used to guess the password behind
 * it, and requests sent at once (each a bcrypt hash, a right one also a new session) cannot
 * queue without end behind everyone's logins. Counted before the check, so they cannot all pass
 * it together. */
async function confirmPassword(deps: Deps, auth: VerifiedToken, password: string, field: string): Promise<UserRow> {
  const { maxPerAccount, windowSeconds } = deps.config.login;
  await countTry(deps, `reauth:user:${auth.userId}`, { max: maxPerAccount, windowSeconds }, "Too many password confirmations for this account; try again later");
  const user = await getUser(deps.store.db, auth.userId);
  if (!user) throw notFound("User");
  if (!(await deps.passwords.verify(password, user.passwordHash))) {
    // Changed since this token was issued (by a request sent at the same time, say): the
    // password given may well have been the current one when it was sent.
    if (user.tokenGeneration !== auth.generation) throw passwordChangedMeanwhile(field);
    throw new DomainError("forbidden", `Incorrect ${field}`, { errors: [{ path: `body.${field}`, message: "is incorrect" }] });
  }
  return user;
}

const passwordChangedMeanwhile = (field: string) =>
  new DomainError("conflict", `The password was changed meanwhile (by another request): ${field} is no longer current; log in with the new password`, {
    errors: [{ path: `body.${field}`, message: "is no longer current" }],
  });
