// skipUnreadRunTrees: LangChain stops building langsmith RunTrees that its mock store would drop
// unread, and behaves exactly as before once a real AsyncLocalStorage is registered.

import { AsyncLocalStorage } from "node:async_hooks";

import { AsyncLocalStorageProviderSingleton } from "@langchain/core/singletons";
import { RunnableLambda } from "@langchain/core/runnables";
import { Annotation, END, START, StateGraph } from "@langchain/langgraph/web";
import { RunTree } from "langsmith";
import { afterEach, describe, expect, it, vi } from "vitest";

import { skipUnreadRunTrees } from "../../agents/run-trees.js";

/** Counts RunTrees built from here on (every constructor asks for the default config, a
 * static method its typings keep private). */
const countRunTrees = () => vi.spyOn(RunTree as unknown as { getDefaultConfig(): object }, "getDefaultConfig");

afterEach(() => {
  vi.restoreAllMocks();
});

describe("skipUnreadRunTrees", () => {
  it("builds no RunTree for runnables and graphs while LangChain uses its mock store, with the same results", async () => {
    skipUnreadRunTrees();
    const built = countRunTrees();
    expect(AsyncLocalStorageProviderSingleton.runWithConfig({ tags: ["t"] }, () => 42)).toBe(42);
    expect(await RunnableLambda.from((x: number) => x + 1).invoke(1)).toBe(2);
    const State = Annotation.Root({ n: Annotation<number>({ reducer: (_, next) => next, default: () => 0 }) });
    const graph = new StateGraph(State)
      .addNode("inc", (s: typeof State.State) => ({ n: s.n + 1 }))
      .addEdge(START, "inc")
      .addConditionalEdges("inc", (s: typeof State.State) => (s.n < 3 ? "inc" : END), ["inc", END])
      .compile();
    expect((await graph.invoke({ n: 0 })).n).toBe(3);
    expect(built).not.toHaveBeenCalled();
  });

  it("lets every call through as before once a real AsyncLocalStorage is registered", () => {
    skipUnreadRunTrees();
    vi.spyOn(AsyncLocalStorageProviderSingleton, "getInstance").mockReturnValue(new AsyncLocalStorage());
    const built = countRunTrees();
    const config = { metadata: { question: "q-1" } };
    // With a real store the config reaches code run inside, carried by the root RunTree.
    const seen = AsyncLocalStorageProviderSingleton.runWithConfig(config, () => AsyncLocalStorageProviderSingleton.getRunnableConfig());
    expect(seen).toMatchObject(config);
    expect(built).toHaveBeenCalledTimes(1);
  });
});
