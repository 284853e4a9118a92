// How deep parsed JSON nests. JSON.parse takes any depth, but what then walks the value
// recursively (JSON.stringify, LangChain's message merging, a schema check) overflows the call
// stack at a few thousand levels: 40 KB of `{"a":` from a model server failed a question with a
// RangeError, and an event stream with it held the user's turn for good.

/** Whether `value` nests objects and arrays more than `max` levels deep (the value itself is
 * level 0), found with a stack of its own so that the check cannot overflow either. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    if (!item || typeof item !== "object") continue;
    if (depth === max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}
