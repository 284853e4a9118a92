// The interactive docs page at /docs: Swagger UI over /openapi.json, with its script and
// stylesheet served by Pulse itself, so the page works offline and behind a strict proxy.

import type { OpenAPIHono } from "@hono/zod-openapi";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

import type { PublicRoute } from "../auth.js";
import type { AppEnv } from "../context.js";

const require = createRequire(import.meta.url);
const { version } = require("swagger-ui-dist/package.json") as { version: string };

/** The version is in the path, so a browser may keep an asset for good: an upgrade changes its URL. */
const ASSET_BASE = `/docs/assets/${version}`;
const ASSETS = {
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui.css": "text/css; charset=utf-8",
} as const;

/** Where other frameworks put their docs pages (FastAPI's ReDoc, seed 003; a trailing slash):
 * sent to this one. ReDoc itself would add 115 packages (85 MB) to every install for a second
 * rendering of the same /openapi.json. */
const DOCS_ALIASES = ["/redoc", "/docs/"] as const;

/** The docs page, its aliases and its assets, for the public list in src/app.ts. */
export const DOCS_ROUTES: readonly PublicRoute[] = [
  { method: "GET", path: "/docs" },
  ...DOCS_ALIASES.map((path) => ({ method: "GET" as const, path })),
  ...Object.keys(ASSETS).map((file) => ({ method: "GET" as const, path: `${ASSET_BASE}/${file}` })),
];

// validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
// The empty icon keeps the browser from asking for /favicon.ico, which needs a token.
const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Pulse API</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${ASSET_BASE}/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="${ASSET_BASE}/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
    </script>
  </body>
</html>
`;

export function mountDocs(app: OpenAPIHono<AppEnv>) {
  // Read on first use, then kept: no file I/O while the app is built.
  const loaded = new Map<string, Promise<string>>();
  const load = (file: keyof typeof ASSETS) => {
    let text = loaded.get(file);
    if (!text) loaded.set(file, (text = readFile(require.resolve(`swagger-ui-dist/${file}`), "utf8")));
    return text;
  };

  app.get("/docs", (c) => c.html(PAGE));
  for (const alias of DOCS_ALIASES) app.get(alias, (c) => c.redirect("/docs", 301));
  for (const [file, contentType] of Object.entries(ASSETS) as [keyof typeof ASSETS, string][]) {
    app.get(`${ASSET_BASE}/${file}`, async (c) =>
      c.body(await load(file), 200, { "content-type": contentType, "cache-control": "public, max-age=31536000, immutable" }),
    );
  }
}
