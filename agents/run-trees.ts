// Stops LangChain from building a langsmith RunTree that nothing reads. With no tracer,
// AsyncLocalStorageProvider.runWithConfig still makes a root RunTree on every runnable call
// (about 20 per ask, nearly all inside LangGraph) just to hold the config in AsyncLocalStorage,
// after configuring a callback manager to look for a tracer. No setting turns this off
// (LANGSMITH_TRACING=false does not; the upstream change to skip it, langchainjs#10043, is not
// in @langchain/core 1.4). Pulse registers no AsyncLocalStorage (agents/graph.ts imports
// LangGraph's /web entry), so LangChain uses its mock store, whose run(store, callback) only
// calls callback: the RunTree is dropped unread. Each costs a uuid7, a timestamp string and
// several environment reads: ~1 ms of CPU per ask.

import { AsyncLocalStorageProviderSingleton, MockAsyncLocalStorage } from "@langchain/core/singletons";

let installed = false;

/**
 * Makes runWithConfig call its callback straight away while the mock store is in use, which is
 * all the mock store does with what runWithConfig prepares. Once anything registers a real
 * AsyncLocalStorage (tracing, LangGraph's main entry), every call goes through as before.
 * Idempotent.
 */
export function skipUnreadRunTrees(): void {
  if (installed) return;
  installed = true;
  const provider = AsyncLocalStorageProviderSingleton;
  const runWithConfig = provider.runWithConfig.bind(provider);
  provider.runWithConfig = <T>(config: unknown, callback: () => T, avoidCreatingRootRunTree?: boolean): T =>
    provider.getInstance() instanceof MockAsyncLocalStorage ? callback() : runWithConfig(config, callback, avoidCreatingRootRunTree);
}
