// Accounts (seed 004): register, log in, read oneself; log out, change one's password and
// delete one's account, which revoke tokens.

import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";

import { MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH } from "../../auth/passwords.js";
import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import { changePassword, deleteAccount, getMe, login, logout, registerUser } from "../../services/accounts.js";
import { clientIp } from "../client-ip.js";
import type { AppEnv } from "../context.js";
import { requireLogin } from "../credential-rules.js";
import { authErrors, errorResponse, givenName, jsonBody, jsonResponse, loginOnly, strictInput, UserSchema } from "../schemas.js";

const tags = ["Accounts"];

/** bcrypt reads only the first 72 bytes: a longer password would match any with the same start,
 * so it is refused at sign-up and at login alike. */
const withinBcryptBytes = [(p: string) => Buffer.byteLength(p) <= MAX_PASSWORD_BYTES, `must be at most ${MAX_PASSWORD_BYTES} bytes`] as const;

/** The rules of a password being set, at sign-up and on a change. */
const NewPassword = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .refine(...withinBcryptBytes);

/** A password given to prove who one is (login, re-authentication). */
const GivenPassword = z
  .string()
  .min(1)
  .refine(...withinBcryptBytes);

/** A domain label as RFC 1035 has it: letters, digits and inner hyphens, at most 63. */
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** An address sign-up takes: ASCII only (an IDN domain in its xn-- form), so no two addresses
 * that look alike; stored and matched lower-cased. Within RFC 5321's limits too, which zod's
 * pattern does not check: no mail reaches a longer local part or domain label. */
const Email = z
  .email({ abort: true })
  .max(254)
  .refine((address) => address.slice(0, address.lastIndexOf("@")).length <= 64, "the part before @ must be at most 64 characters")
  .refine(
    (address) => address.slice(address.lastIndexOf("@") + 1).split(".").every((label) => DOMAIN_LABEL.test(label)),
    "each part of the domain must be at most 63 characters and not end in a hyphen",
  );

const RegisterBody = z
  .object({
    name: givenName(200).openapi({ example: "John Doe" }),
    email: Email.openapi({ description: "Case-insensitive: kept and answered lower-cased, and login takes it in any case", example: "john@example.com" }),
    password: NewPassword.openapi({ example: "securepassword" }),
  })
  .openapi("RegisterUser");

const LoginBody = z
  .object({
    username: z.string().min(1).max(254).openapi({ description: "The account's email", example: "john@example.com" }),
    password: GivenPassword,
    // The rest of the OAuth2 password form, which standard clients send; not used.
    // Empty as FastAPI's OAuth2PasswordRequestForm clients send it when not set.
    grant_type: z.enum(["password", ""]).optional(),
    scope: z.string().max(1000).optional(),
    client_id: z.string().max(1000).optional(),
    client_secret: z.string().max(1000).optional(),
  })
  .openapi("Login");

const PasswordChangeBody = z
  .object({ current_password: GivenPassword, new_password: NewPassword.openapi({ example: "another secure password" }) })
  .openapi("PasswordChange");

const DeleteAccountBody = z.object({ password: GivenPassword.openapi({ example: "securepassword" }) }).openapi("DeleteAccount");

const TokenSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal("bearer"),
    expires_in: z.number().int(),
    session_id: z.string(),
  })
  .openapi("AccessToken", {
    example: { access_token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzaWQiOi…", token_type: "bearer", expires_in: 86400, session_id: "3f6c2a1e-8d4b-4f0a-9c57-2b1e7d9a4c10" },
  });

const register = createRoute({
  method: "post",
  path: "/users/",
  tags,
  summary: "Register a new user",
  request: { body: jsonBody(RegisterBody) },
  responses: {
    201: jsonResponse(UserSchema, "The new user"),
    409: errorResponse("Email already registered"),
    422: errorResponse("Invalid input"),
    429: errorResponse("Too many sign-ups; see Retry-After"),
  },
});

const loginRoute = createRoute({
  method: "post",
  path: "/login",
  tags,
  summary: "Log in (OAuth2 password form or JSON) and open a session",
  request: {
    body: {
      content: {
        "application/x-www-form-urlencoded": { schema: strictInput(LoginBody) },
        "application/json": { schema: strictInput(LoginBody) },
      },
    },
  },
  responses: {
    200: jsonResponse(TokenSchema, "Access token for the new session"),
    401: errorResponse("Incorrect email or password"),
    422: errorResponse("Invalid input"),
    429: errorResponse("Too many attempts; see Retry-After"),
  },
});

const me = createRoute({
  method: "get",
  path: "/users/me",
  tags,
  summary: "The authenticated user",
  responses: { 200: jsonResponse(UserSchema, "The authenticated user"), ...loginOnly, ...authErrors },
});

const logoutRoute = createRoute({
  method: "post",
  path: "/logout",
  tags,
  summary: "Revoke this token for good and end its session",
  responses: { 204: { description: "Logged out: the token is refused from now on, on every instance" }, ...loginOnly, ...authErrors },
});

const wrongPassword = errorResponse("The password given is not the account's, or sent with an API key (login tokens only)");
const tooManyWrong = errorResponse("Too many password confirmations (LOGIN_MAX_ATTEMPTS_PER_ACCOUNT per window, right or wrong); see Retry-After");

const changePasswordRoute = createRoute({
  method: "put",
  path: "/users/me/password",
  tags,
  summary: "Change your password: revokes every token of yours and answers a new one",
  request: { body: jsonBody(PasswordChangeBody) },
  responses: {
    200: jsonResponse(TokenSchema, "Access token for a new session"),
    403: wrongPassword,
    409: errorResponse("The password was changed by another request meanwhile: log in with the new one"),
    429: tooManyWrong,
    ...authErrors,
  },
});

const deleteMe = createRoute({
  method: "delete",
  path: "/users/me",
  tags,
  summary: "Delete your account and everything it owns; revokes every token of yours",
  request: { body: jsonBody(DeleteAccountBody) },
  responses: { 204: { description: "Deleted" }, 403: wrongPassword, 429: tooManyWrong, ...authErrors },
});

export function mountAccounts(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const signUp = async (c: Context<AppEnv>, body: z.infer<typeof RegisterBody>) =>
    c.json(await registerUser(deps, { ...body, clientIp: clientIp(c, deps.config.trustedProxies) }), 201);
  app.openapi(register, (c) => signUp(c, c.req.valid("json")));
  // Without a trailing slash too: clients differ on it.
  app.openapi({ ...register, path: "/users", hide: true }, (c) => signUp(c, c.req.valid("json")));

  app.openapi(loginRoute, async (c) => {
    // Each validator fills only the body type that was sent; the other is left empty.
    const form = c.req.valid("form") as Partial<z.infer<typeof LoginBody>>;
    const json = c.req.valid("json") as Partial<z.infer<typeof LoginBody>>;
    const creds = form.username !== undefined ? form : json;
    if (creds.username === undefined || creds.password === undefined) {
      throw new DomainError("invalid_input", "Invalid input: send username and password as a form or JSON body", {
        errors: [{ path: "body", message: "username and password are required" }],
      });
    }
    const token = await login(deps, {
      email: creds.username,
      password: creds.password,
      clientIp: clientIp(c, deps.config.trustedProxies),
    });
    return c.json(token, 200);
  });

  app.openapi(me, async (c) => c.json(await getMe(deps, requireLogin(c.get("auth"), "read the account").userId), 200));

  app.openapi(logoutRoute, async (c) => {
    await logout(deps, requireLogin(c.get("auth"), "log out: revoke the key instead"));
    return c.body(null, 204);
  });

  app.openapi(changePasswordRoute, async (c) => {
    const body = c.req.valid("json");
    return c.json(await changePassword(deps, requireLogin(c.get("auth"), "change the password"), { currentPassword: body.current_password, newPassword: body.new_password }), 200);
  });

  app.openapi(deleteMe, async (c) => {
    await deleteAccount(deps, requireLogin(c.get("auth"), "delete the account"), c.req.valid("json").password);
    return c.body(null, 204);
  });
}
