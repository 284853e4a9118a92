// Route matching for the app: hono's usual SmartRouter, with its answers remembered per method
// and path. This app's mix of middleware paths makes SmartRouter settle on the TrieRouter
// (RegExpRouter refuses it), which walks the trie on every request; a match depends only on the
// method and path, so a hit costs one map lookup.

import type { Result, Router } from "hono/router";
import type { RouterRoute } from "hono/types";
import { RegExpRouter } from "hono/router/reg-exp-router";
import { SmartRouter } from "hono/router/smart-router";
import { TrieRouter } from "hono/router/trie-router";

/** Paths carry ids, so there are many; past this many the memory starts over. */
const MAX_REMEMBERED = 2_000;

export class RememberingRouter<T> implements Router<T> {
  readonly name = "RememberingRouter";
  private readonly inner: Router<T> = new SmartRouter({ routers: [new RegExpRouter(), new TrieRouter()] });
  private readonly remembered = new Map<string, Map<string, Result<T>>>();
  private size = 0;

  add(method: string, path: string, handler: T): void {
    this.forget();
    this.inner.add(method, path, handler);
  }

  match(method: string, path: string): Result<T> {
    let byPath = this.remembered.get(method);
    const known = byPath?.get(path);
    if (known) return known;
    // hono treats a match as read-only (RegExpRouter hands out shared ones too).
    const result = this.inner.match(method, path);
    if (this.size >= MAX_REMEMBERED) {
      this.forget();
      byPath = undefined;
    }
    if (!byPath) this.remembered.set(method, (byPath = new Map()));
    byPath.set(path, result);
    this.size++;
    return result;
  }

  private forget(): void {
    this.remembered.clear();
    this.size = 0;
  }
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/** The methods some route answers on `path` (middleware, registered as ALL, does not count),
 * with HEAD wherever GET is, as hono answers it: what a 405's Allow header lists. */
export function allowedMethods(router: Router<[unknown, RouterRoute]>, path: string): string[] {
  const allowed: string[] = METHODS.filter((method) => router.match(method, path)[0].some(([[, route]]) => route.method !== "ALL"));
  if (allowed.includes("GET")) allowed.splice(1 + allowed.indexOf("GET"), 0, "HEAD");
  return allowed;
}
