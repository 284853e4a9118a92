// Accounts (seed 004): register, log in, read oneself.

import { getConnInfo } from "@hono/node-server/conninfo";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";

import { MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH } from "../../auth/passwords.js";
import type { Deps } from "../../deps.js";
import { DomainError } from "../../errors.js";
import { getMe, login, registerUser } from "../../services/accounts.js";
import { requireAuth } from "../auth.js";
import type { AppEnv } from "../context.js";
import { authErrors, errorResponse, jsonBody, jsonResponse, strictBody, UserSchema } from "../schemas.js";

const tags = ["Accounts"];

/** bcrypt reads only the first 72 bytes: a longer password would match any with the same start,
 * so it is refused at sign-up and at login alike. */
const withinBcryptBytes = [(p: string) => Buffer.byteLength(p) <= MAX_PASSWORD_BYTES, `must be at most ${MAX_PASSWORD_BYTES} bytes`] as const;

const RegisterBody = z
  .object({
    name: z.string().trim().min(1).max(200).openapi({ example: "John Doe" }),
    email: z.email().max(254).openapi({ example: "john@example.com" }),
    password: z
      .string()
      .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
      .refine(...withinBcryptBytes)
      .openapi({ example: "securepassword" }),
  })
  .openapi("RegisterUser");

const LoginBody = z
  .object({
    username: z.string().min(1).max(254).openapi({ description: "The account's email", example: "john@example.com" }),
    password: z
      .string()
      .min(1)
      .refine(...withinBcryptBytes),
    // The rest of the OAuth2 password form, which standard clients send; not used.
    grant_type: z.literal("password").optional(),
    scope: z.string().max(1000).optional(),
    client_id: z.string().max(1000).optional(),
    client_secret: z.string().max(1000).optional(),
  })
  .openapi("Login");

const TokenSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal("bearer"),
    expires_in: z.number().int(),
    session_id: z.string(),
  })
  .openapi("AccessToken");

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
        "application/x-www-form-urlencoded": { schema: strictBody(LoginBody) },
        "application/json": { schema: strictBody(LoginBody) },
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
  security: [{ bearer: [] }],
  responses: { 200: jsonResponse(UserSchema, "The authenticated user"), ...authErrors },
});

function clientIp(c: Context<AppEnv>, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // app.request() in tests has no socket
  }
}

export function mountAccounts(app: OpenAPIHono<AppEnv>, deps: Deps) {
  const signUp = async (c: Context<AppEnv>, body: z.infer<typeof RegisterBody>) =>
    c.json(await registerUser(deps, { ...body, clientIp: clientIp(c, deps.config.trustProxy) }), 201);
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
      clientIp: clientIp(c, deps.config.trustProxy),
    });
    return c.json(token, 200);
  });

  app.use(me.getRoutingPath(), requireAuth(deps));
  app.openapi(me, async (c) => c.json(await getMe(deps, c.get("auth").userId), 200));
}
